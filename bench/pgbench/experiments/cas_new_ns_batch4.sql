-- pgbench: four CompareAndSets of new keys in one call of agentstate_kv_write,
-- in one of :nsn namespaces 'pgb-ns0'.. at random (run with -D nsn=N): what
-- the service sends when four concurrent writes of one namespace share a
-- batch, as they do at c = 64 over 16 namespaces (~3.5 writes a statement,
-- BENCHMARKS §6). Writes/s = 4 x tps. With cas_new_ns.sql (one write) it
-- separates the function's cost per statement from its cost per write
-- (bench/experiments/kv-write-statements.mjs). The statement below is
-- src/store/postgres/sql/kv_write.sql with its parameters replaced as its
-- "-- src:" line says; bench/run.mjs checks it still matches (regenerate with
-- node bench/lib/pgbenchSql.mjs --write).
\set k random(1, 1000000000000)
\set ns random(0, :nsn - 1)
-- src: kv_write | $1='pgb-ns' || :ns | $2=@rep(4) convert_to('k/' || :k || '-#', 'UTF8') | $3=@rep(4) 1 | $4=@rep(4) '\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea | $5=@rep(4) '' | $6=@rep(4) NULL::bigint | $7=@rep(4) 0 | $8=@rep(4) NULL::bigint | $9=@rep(4) NULL::text | $10=@rep(4) NULL::bigint | $11=@rep(4) NULL::text | $12=@rep(4) NULL::bytea | $13=@rep(4) 10000 | $14=@rep(4) NULL::bigint | $15=@rep(4) false | $16=@rep(4) 'pgbench' | $17=@rep(4) 'pgbench-req' | $18=false | $19=@rep(4) NULL::text | $20=@rep(4) NULL::bigint
SELECT * FROM agentstate_kv_write(p_ns => 'pgb-ns' || :ns::text, p_key => ARRAY[convert_to('k/' || :k || '-1', 'UTF8'), convert_to('k/' || :k || '-2', 'UTF8'), convert_to('k/' || :k || '-3', 'UTF8'), convert_to('k/' || :k || '-4', 'UTF8')]::bytea[], p_op => ARRAY[1, 1, 1, 1]::smallint[],
  p_value => ARRAY['\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea, '\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea, '\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea, '\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea]::bytea[], p_ct => ARRAY['', '', '', '']::text[], p_ttl_ms => ARRAY[NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint]::bigint[], p_exp_kind => ARRAY[0, 0, 0, 0]::smallint[],
  p_exp_version => ARRAY[NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint]::bigint[], p_fence_name => ARRAY[NULL::text, NULL::text, NULL::text, NULL::text]::text[], p_fence_token => ARRAY[NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint]::bigint[], p_idem => ARRAY[NULL::text, NULL::text, NULL::text, NULL::text]::text[],
  p_fp => ARRAY[NULL::bytea, NULL::bytea, NULL::bytea, NULL::bytea]::bytea[], p_deadline_ms => ARRAY[10000, 10000, 10000, 10000]::bigint[], p_marked_epoch => ARRAY[NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint]::bigint[], p_bump => ARRAY[false, false, false, false]::boolean[],
  p_principal => ARRAY['pgbench', 'pgbench', 'pgbench', 'pgbench']::text[], p_request_id => ARRAY['pgbench-req', 'pgbench-req', 'pgbench-req', 'pgbench-req']::text[], p_wait => false::boolean, p_marked_by => ARRAY[NULL::text, NULL::text, NULL::text, NULL::text]::text[],
  p_marked_ns_epoch => ARRAY[NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint]::bigint[]);
