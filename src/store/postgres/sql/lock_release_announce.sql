-- lock_release_announce: announces a lock released elsewhere (Redlock) on
-- channel agentstate_locks, so waiters on every replica try at once
-- (PgLockReleases).
-- $1 announcement text (the NOTIFY payload: PgLockReleases.payload)
-- Returns nothing of use.
SELECT pg_notify('agentstate_locks', $1)
