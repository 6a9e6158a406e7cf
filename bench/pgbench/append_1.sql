-- pgbench: AppendEvent(expected any) of 1 event(s) of 64 bytes to the client's
-- own stream, exactly what the service sends for it: one call of
-- agentstate_event_append (migrations/0005_event_append.sql) in autocommit, as
-- a named prepared statement (pgbench -M prepared, as node-postgres does),
-- with the 10 s deadline check every served append carries. The streams
-- 'pgb-s-<client_id>' exist before the run (run.mjs creates them). Event ids
-- are md5(random)::uuid here, random UUIDs there; fingerprints are 32 bytes
-- either way. The statement below is src/store/postgres/sql/event_append.sql
-- with its parameters replaced as its "-- src:" line says. bench/run.mjs
-- refuses to run when it no longer matches its source (regenerate the body
-- with node bench/lib/pgbenchSql.mjs --write).
\set r random(1, 9223372036854775806)
-- src: event_append | $1='pgbench' | $2='pgb-s-' || :client_id | $3=0 | $4=NULL | $5=@rep(1) md5(:r::text || '-#')::uuid | $6=@rep(1) 'bench' | $7=@rep(1) '\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea | $8=@rep(1) '{}'::jsonb | $9=@rep(1) '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea | $10=NULL | $11=NULL | $12=10000
SELECT * FROM agentstate_event_append('pgbench'::text, 'pgb-s-' || :client_id::text, 0::smallint, NULL::bigint, ARRAY[md5(:r::text || '-1')::uuid]::uuid[], ARRAY['bench']::text[],
  ARRAY['\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea]::bytea[], ARRAY['{}'::jsonb]::jsonb[], ARRAY['\x0000000000000000000000000000000000000000000000000000000000000000'::bytea]::bytea[], NULL::text, NULL::bigint, 10000::bigint);
