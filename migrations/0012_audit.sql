-- 0012_audit: who made each change (issue 16, the audit trail).
--
-- Every KV history row and every event records the principal the change was
-- made for and the request id of the call that made it:
--   principal   the authenticated principal's name; '' when the server ran
--               with AGENTSTATE_AUTH=off (anonymous); NULL when not recorded:
--               key expiries (the janitor, op 3) and changes made by a replica
--               of an earlier release during a rolling upgrade;
--   request_id  the call's x-request-id (the caller's, or one the server made
--               up and sent back); NULL when not recorded, as above.
-- Nullable columns without a default: adding them rewrites nothing.
ALTER TABLE kv_history ADD COLUMN principal text, ADD COLUMN request_id text;
ALTER TABLE events ADD COLUMN principal text, ADD COLUMN request_id text;

-- AdminService.ListChanges reads a namespace's changes newest first within a
-- time range (src/store/postgres/sql/audit_changes.sql): one backward range
-- scan per table, merged. The (namespace, created_at, revision) order is also
-- the page token's.
CREATE INDEX kv_history_audit ON kv_history (namespace, created_at, revision);
CREATE INDEX events_audit ON events (namespace, created_at, position);

-- The write functions take the principal and request id per write, and the
-- namespace as one scalar (a batch holds one namespace: GroupCommitQueue's
-- partition), so a distributed Postgres (Citus) can route the call to one
-- shard (issue 15). Those are new signatures: src/store/postgres/functions/
-- creates them right after the migrations. The previous release's
-- signatures (p_ns text[], no principal) are not dropped: its replicas keep
-- calling them during a rolling upgrade (calls name their parameters, so each
-- release reaches its own overload), and their rows get a NULL principal and
-- request id. A later release's migration drops them:
--   DROP FUNCTION agentstate_kv_write(text[], bytea[], smallint[], bytea[], text[], bigint[], smallint[],
--     bigint[], text[], bigint[], text[], bytea[], bigint[], bigint[], boolean[], boolean);
--   DROP FUNCTION agentstate_event_append(text[], text[], smallint[], bigint[], int[], uuid[], text[],
--     bytea[], jsonb[], bytea[], text[], bigint[], bigint[], boolean);
