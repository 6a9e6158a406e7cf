-- pgbench: CompareAndSet(expected any) of one existing key by every client,
-- exactly what the service sends for one write committed alone: one call of
-- agentstate_kv_write in autocommit, as a named prepared statement (pgbench
-- -M prepared), waiting for the key while another client holds it ($16 true,
-- as the service runs a write alone). The key 'hot' exists before the run
-- (run.mjs creates it).
-- The statement below is src/store/postgres/sql/kv_write.sql with its
-- parameters replaced as its "-- src:" line says. bench/run.mjs refuses to run
-- when it no longer matches its source (regenerate the body with
-- node bench/lib/pgbenchSql.mjs --write).
-- src: kv_write | $1=ARRAY['pgbench'] | $2=ARRAY[convert_to('hot', 'UTF8')] | $3=ARRAY[1] | $4=ARRAY['\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea] | $5=ARRAY[''] | $6=ARRAY[NULL::bigint] | $7=ARRAY[0] | $8=ARRAY[NULL::bigint] | $9=ARRAY[NULL::text] | $10=ARRAY[NULL::bigint] | $11=ARRAY[NULL::text] | $12=ARRAY[NULL::bytea] | $13=ARRAY[10000] | $14=ARRAY[NULL::bigint] | $15=ARRAY[false] | $16=true
SELECT * FROM agentstate_kv_write(ARRAY['pgbench']::text[], ARRAY[convert_to('hot', 'UTF8')]::bytea[], ARRAY[1]::smallint[], ARRAY['\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea]::bytea[], ARRAY['']::text[], ARRAY[NULL::bigint]::bigint[],
  ARRAY[0]::smallint[], ARRAY[NULL::bigint]::bigint[], ARRAY[NULL::text]::text[], ARRAY[NULL::bigint]::bigint[], ARRAY[NULL::text]::text[], ARRAY[NULL::bytea]::bytea[], ARRAY[10000]::bigint[],
  ARRAY[NULL::bigint]::bigint[], ARRAY[false]::boolean[], true::boolean);
