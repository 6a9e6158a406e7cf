-- EXPERIMENT (not what the service does today): cas_new.sql sent as one
-- pipeline (pgbench \startpipeline): the five statements go out in one write
-- and the client never sits between kv_put and COMMIT while the transaction
-- holds the store's revision row lock. An upper bound for running the CAS
-- transaction in one round trip (a single statement or server-side function).
-- Each statement below is src/store/postgres/sql/<name>.sql with its
-- parameters replaced as its "-- src:" line says; bench/run.mjs checks they
-- still match (regenerate with node bench/lib/pgbenchSql.mjs --write).
\set k random(1, 1000000000000)
\startpipeline
BEGIN;
-- src: kv_lock_row | $1='pgbench' | $2=convert_to('k/' || :k, 'UTF8')
SELECT key, value, content_type, version, create_revision, mod_revision,
       created_at, updated_at, expires_at, now() AS db_now
FROM kv WHERE namespace = 'pgbench' AND key = convert_to('k/' || :k, 'UTF8')
FOR UPDATE;
-- src: kv_insert_placeholder | $1='pgbench' | $2=convert_to('k/' || :k, 'UTF8')
INSERT INTO kv (namespace, key, value, version, create_revision, mod_revision, created_at, updated_at)
VALUES ('pgbench', convert_to('k/' || :k, 'UTF8'), ''::bytea, 0, 0, 0, now(), now())
ON CONFLICT (namespace, key) DO NOTHING
RETURNING 1 AS claimed;
-- src: kv_put | $1='pgbench' | $2=convert_to('k/' || :k, 'UTF8') | $3='\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea | $4='' | $5=1 | $6=NULL | $7=true
WITH rev AS (
  UPDATE agentstate_state SET revision = revision + 1 WHERE id = 1
  RETURNING revision, now() AS ts, cache_epoch
), up AS (
  UPDATE kv SET
    value = '\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea, content_type = '', version = 1,
    create_revision = CASE WHEN true THEN rev.revision ELSE kv.create_revision END,
    created_at = CASE WHEN true THEN rev.ts ELSE kv.created_at END,
    mod_revision = rev.revision, updated_at = rev.ts,
    expires_at = CASE WHEN NULL::bigint IS NULL THEN NULL ELSE rev.ts + NULL::bigint * interval '1 millisecond' END
  FROM rev
  WHERE kv.namespace = 'pgbench' AND kv.key = convert_to('k/' || :k, 'UTF8')
  RETURNING kv.key, kv.value, kv.content_type, kv.version, kv.create_revision, kv.mod_revision,
            kv.created_at, kv.updated_at, kv.expires_at
), hist AS (
  INSERT INTO kv_history (revision, namespace, key, op, version, value, content_type, expires_at, created_at)
  SELECT rev.revision, 'pgbench', convert_to('k/' || :k, 'UTF8'), 1, up.version, up.value, up.content_type, up.expires_at, rev.ts FROM rev, up
)
SELECT up.*, rev.revision AS store_revision, rev.cache_epoch FROM up, rev;
COMMIT;
\endpipeline
