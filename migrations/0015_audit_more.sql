-- 0015_audit_more: who made the changes that have no history of their own
-- (issue 16, the audit trail, beside 0012's kv_history and events columns):
-- checkpoint puts, pending writes, thread deletes, copies and prunes, deletes
-- by run, store item puts and deletes. One row per change, written by the
-- change's own statement (a data-modifying CTE around it, in
-- src/store/postgres/sql/), so a change and its row commit together:
--   op          what was done (PostgresAuditLog's OPS: 5 checkpoint put,
--               6 pending writes, 7 thread delete, 8 thread copy, 9 prune,
--               10 delete for runs, 11 item put, 12 item delete);
--   target      what it was done to, never a value: "thread/checkpoint_ns/
--               checkpoint_id" (put, writes), the thread id (delete, prune,
--               delete for runs; the copy's target thread), "path/key" (items);
--   principal   as in 0012: '' with auth off, NULL when not recorded;
--   request_id  as in 0012.
-- AdminService.ListChanges reads it newest first by its primary key, the
-- (created_at, id) pair being the page token's position for its rows.
CREATE TABLE audit_changes (
  namespace text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  id bigserial NOT NULL,
  op smallint NOT NULL,
  target text NOT NULL,
  principal text,
  request_id text,
  PRIMARY KEY (namespace, created_at, id)
);
