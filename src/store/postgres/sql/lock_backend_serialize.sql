-- lock_backend_serialize: first statement of a lock backend registration's
-- transaction; the lock conflicts with itself, so registrations run one at a
-- time and the next statement's snapshot sees every earlier one.
-- No parameters. Returns nothing.
LOCK TABLE lock_backend_replicas IN SHARE ROW EXCLUSIVE MODE
