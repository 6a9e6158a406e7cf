-- 0016_audit_retention: audit_changes (0015) gets the history's retention
-- (issue 16): the Janitor deletes its rows older than
-- AGENTSTATE_HISTORY_RETENTION_SECONDS in bounded batches, oldest first over
-- every namespace (src/store/postgres/sql/audit_changes_trim.sql). The primary
-- key leads with the namespace, so it cannot find the oldest rows of the whole
-- table without reading all of it; this index does, as kv_history_created_at
-- and events_created_at do for history_trim and events_trim_age.
CREATE INDEX audit_changes_created_at ON audit_changes (created_at);
