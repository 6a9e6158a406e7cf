-- kv_expire_sweep: removes up to $1 expired keys, giving each removal its own
-- revision (op 3, expire) in the history log. Rows locked by a writer are
-- skipped and picked up by a later sweep.
-- $1 batch size int
-- Returns the number of keys removed as `removed`.
WITH victims AS (
  SELECT namespace, key, version FROM kv
  WHERE expires_at <= now() AND version > 0
  ORDER BY expires_at
  LIMIT $1
  FOR UPDATE SKIP LOCKED
), numbered AS (
  SELECT v.*, row_number() OVER (ORDER BY v.namespace, v.key) AS n FROM victims v
), rev AS (
  UPDATE agentstate_state SET revision = revision + (SELECT count(*) FROM victims)
  WHERE id = 1 AND EXISTS (SELECT 1 FROM victims)
  RETURNING revision - (SELECT count(*) FROM victims) AS base, now() AS ts
), del AS (
  DELETE FROM kv USING victims WHERE kv.namespace = victims.namespace AND kv.key = victims.key
  RETURNING kv.namespace
), hist AS (
  INSERT INTO kv_history (revision, namespace, key, op, version, created_at)
  SELECT rev.base + numbered.n, numbered.namespace, numbered.key, 3, numbered.version, rev.ts FROM rev, numbered
)
SELECT count(*)::int AS removed FROM del
