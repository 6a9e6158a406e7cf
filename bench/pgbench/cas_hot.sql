-- pgbench: CompareAndSet(expected any) of one existing key by every client,
-- the exact transaction PostgresKvStore.writeOnce runs for it: BEGIN;
-- kv_lock_row (the row, locked; its version read with \gset); kv_put with
-- version + 1; COMMIT. The key 'hot' exists before the run (run.mjs creates it).
-- Each statement below is src/store/postgres/sql/<name>.sql with its
-- parameters replaced as its "-- src:" line says. bench/run.mjs refuses to run
-- when a statement no longer matches its source (regenerate the bodies with
-- node bench/lib/pgbenchSql.mjs --write).
BEGIN;
-- src: kv_lock_row [gset] | $1='pgbench' | $2=convert_to('hot', 'UTF8')
SELECT key, value, content_type, version, create_revision, mod_revision,
       created_at, updated_at, expires_at, now() AS db_now
FROM kv WHERE namespace = 'pgbench' AND key = convert_to('hot', 'UTF8')
FOR UPDATE \gset
\set nv :version + 1
-- src: kv_put | $1='pgbench' | $2=convert_to('hot', 'UTF8') | $3='\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea | $4='' | $5=:nv | $6=NULL | $7=false
WITH rev AS (
  UPDATE agentstate_state SET revision = revision + 1 WHERE id = 1
  RETURNING revision, now() AS ts, cache_epoch
), up AS (
  UPDATE kv SET
    value = '\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea, content_type = '', version = :nv,
    create_revision = CASE WHEN false THEN rev.revision ELSE kv.create_revision END,
    created_at = CASE WHEN false THEN rev.ts ELSE kv.created_at END,
    mod_revision = rev.revision, updated_at = rev.ts,
    expires_at = CASE WHEN NULL::bigint IS NULL THEN NULL ELSE rev.ts + NULL::bigint * interval '1 millisecond' END
  FROM rev
  WHERE kv.namespace = 'pgbench' AND kv.key = convert_to('hot', 'UTF8')
  RETURNING kv.key, kv.value, kv.content_type, kv.version, kv.create_revision, kv.mod_revision,
            kv.created_at, kv.updated_at, kv.expires_at
), hist AS (
  INSERT INTO kv_history (revision, namespace, key, op, version, value, content_type, expires_at, created_at)
  SELECT rev.revision, 'pgbench', convert_to('hot', 'UTF8'), 1, up.version, up.value, up.content_type, up.expires_at, rev.ts FROM rev, up
)
SELECT up.*, rev.revision AS store_revision, rev.cache_epoch FROM up, rev;
COMMIT;
