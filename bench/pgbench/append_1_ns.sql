-- pgbench: append_1.sql over :nsn namespaces 'pgb-ns0'.. (run with -D nsn=N;
-- each transaction picks one at random; streams are created on first append),
-- for bench/run.mjs's append-1-nsN.
-- AppendEvent(expected any) of 1 event(s) of 64 bytes to the client's
-- own stream, exactly what the service sends for an append committed alone:
-- one call of agentstate_event_append (src/store/postgres/functions/agentstate_event_append.sql) with
-- one append, in autocommit, as a named prepared statement (pgbench -M
-- prepared, as node-postgres does), with the 10 s deadline check every served
-- append carries; $16 true: the form the service uses for an append it runs
-- alone (its batches ask not to wait and re-run the appends whose stream was held). The streams
-- 'pgb-s-<client_id>' exist before the run (run.mjs creates them). Event ids
-- are md5(random)::uuid here, random UUIDs there; fingerprints are 32 bytes
-- either way. The statement below is src/store/postgres/sql/event_append.sql
-- with its parameters replaced as its "-- src:" line says. bench/run.mjs
-- refuses to run when it no longer matches its source (regenerate the body
-- with node bench/lib/pgbenchSql.mjs --write).
\set r random(1, 9223372036854775806)
\set ns random(0, :nsn - 1)
-- src: event_append | $1='pgb-ns' || :ns | $2=ARRAY['pgb-s-' || :client_id] | $3=ARRAY[0] | $4=ARRAY[NULL::bigint] | $5=ARRAY[1] | $6=@rep(1) md5(:r::text || '-#')::uuid | $7=@rep(1) 'bench' | $8=@rep(1) '\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea | $9=@rep(1) '{}'::jsonb | $10=@rep(1) '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea | $11=ARRAY[NULL::text] | $12=ARRAY[NULL::bigint] | $13=ARRAY[10000] | $14=ARRAY['pgbench'] | $15=ARRAY['pgbench-req'] | $16=true
SELECT * FROM agentstate_event_append(p_ns => 'pgb-ns' || :ns::text, p_stream => ARRAY['pgb-s-' || :client_id]::text[], p_exp_kind => ARRAY[0]::smallint[],
  p_exp_version => ARRAY[NULL::bigint]::bigint[], p_count => ARRAY[1]::int[], p_ids => ARRAY[md5(:r::text || '-1')::uuid]::uuid[], p_types => ARRAY['bench']::text[],
  p_data => ARRAY['\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea]::bytea[], p_metadata => ARRAY['{}'::jsonb]::jsonb[], p_fp => ARRAY['\x0000000000000000000000000000000000000000000000000000000000000000'::bytea]::bytea[], p_fence_name => ARRAY[NULL::text]::text[],
  p_fence_token => ARRAY[NULL::bigint]::bigint[], p_deadline_ms => ARRAY[10000]::bigint[], p_principal => ARRAY['pgbench']::text[], p_request_id => ARRAY['pgbench-req']::text[],
  p_wait => true::boolean);
