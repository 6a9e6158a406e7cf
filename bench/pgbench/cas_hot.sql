-- pgbench: CompareAndSet(expected any) of one existing key by every client,
-- exactly what the service sends for one write committed alone: one call of
-- agentstate_kv_write in autocommit, as a named prepared statement (pgbench
-- -M prepared), waiting for the key while another client holds it ($18 true,
-- as the service runs a write alone). The key 'hot' exists before the run
-- (run.mjs creates it).
-- The statement below is src/store/postgres/sql/kv_write.sql with its
-- parameters replaced as its "-- src:" line says. bench/run.mjs refuses to run
-- when it no longer matches its source (regenerate the body with
-- node bench/lib/pgbenchSql.mjs --write).
-- src: kv_write | $1='pgbench' | $2=ARRAY[convert_to('hot', 'UTF8')] | $3=ARRAY[1] | $4=ARRAY['\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea] | $5=ARRAY[''] | $6=ARRAY[NULL::bigint] | $7=ARRAY[0] | $8=ARRAY[NULL::bigint] | $9=ARRAY[NULL::text] | $10=ARRAY[NULL::bigint] | $11=ARRAY[NULL::text] | $12=ARRAY[NULL::bytea] | $13=ARRAY[10000] | $14=ARRAY[NULL::bigint] | $15=ARRAY[false] | $16=ARRAY['pgbench'] | $17=ARRAY['pgbench-req'] | $18=true | $19=ARRAY[NULL::text] | $20=ARRAY[NULL::bigint]
SELECT * FROM agentstate_kv_write(p_ns => 'pgbench'::text, p_key => ARRAY[convert_to('hot', 'UTF8')]::bytea[], p_op => ARRAY[1]::smallint[],
  p_value => ARRAY['\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea]::bytea[], p_ct => ARRAY['']::text[], p_ttl_ms => ARRAY[NULL::bigint]::bigint[], p_exp_kind => ARRAY[0]::smallint[],
  p_exp_version => ARRAY[NULL::bigint]::bigint[], p_fence_name => ARRAY[NULL::text]::text[], p_fence_token => ARRAY[NULL::bigint]::bigint[], p_idem => ARRAY[NULL::text]::text[],
  p_fp => ARRAY[NULL::bytea]::bytea[], p_deadline_ms => ARRAY[10000]::bigint[], p_marked_epoch => ARRAY[NULL::bigint]::bigint[], p_bump => ARRAY[false]::boolean[],
  p_principal => ARRAY['pgbench']::text[], p_request_id => ARRAY['pgbench-req']::text[], p_wait => true::boolean, p_marked_by => ARRAY[NULL::text]::text[],
  p_marked_ns_epoch => ARRAY[NULL::bigint]::bigint[]);
