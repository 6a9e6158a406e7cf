-- kv_expire_sweep: removes up to $2 expired keys of one namespace, giving
-- each removal the namespace's next revision (op 3, expire) in the history
-- log, under the namespace's revision row lock (taken after the key rows, as
-- writes take it). Rows locked by a writer are skipped and picked up by a
-- later sweep. One namespace per statement (kv_expire_namespaces finds them).
-- A namespace with keys has its revision row (its keys' creations made it).
-- $1 namespace text, $2 batch size int
-- Returns the number of keys removed as `removed`.
WITH victims AS (
  SELECT namespace, key, version FROM kv
  WHERE namespace = $1 AND expires_at <= now() AND version > 0
  ORDER BY expires_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED
), numbered AS (
  SELECT v.*, row_number() OVER (ORDER BY v.key) AS n FROM victims v
), rev AS (
  UPDATE namespace_revisions SET revision = revision + (SELECT count(*) FROM victims)
  WHERE namespace = $1 AND EXISTS (SELECT 1 FROM victims)
  RETURNING revision - (SELECT count(*) FROM victims) AS base, now() AS ts
), del AS (
  DELETE FROM kv USING victims WHERE kv.namespace = victims.namespace AND kv.key = victims.key
  RETURNING kv.namespace
), hist AS (
  INSERT INTO kv_history (revision, namespace, key, op, version, created_at)
  SELECT rev.base + numbered.n, numbered.namespace, numbered.key, 3, numbered.version, rev.ts FROM rev, numbered
)
SELECT count(*)::int AS removed FROM del
