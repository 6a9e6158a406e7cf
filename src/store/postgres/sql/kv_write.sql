-- kv_write: a batch of KV writes (CompareAndSet / Delete) in one statement,
-- run in autocommit: see src/store/postgres/functions/agentstate_kv_write.sql,
-- which names and explains every parameter. Parameters are passed by name
-- (sql.ts byName): each p_name below is bound from the field of that name.
-- For the batch: p_ns text (its one namespace). One array element per write: p_key bytea[], p_op smallint[],
-- p_value bytea[], p_ct text[], p_ttl_ms bigint[], p_exp_kind smallint[],
-- p_exp_version bigint[], p_fence_name text[], p_fence_token bigint[],
-- p_idem text[], p_fp bytea[], p_deadline_ms bigint[], p_marked_epoch bigint[],
-- p_bump boolean[], p_principal text[], p_request_id text[]; for the batch: p_wait boolean;
-- per write again: p_marked_by text[], p_marked_ns_epoch bigint[].
-- Returns one row per write (`idx` is its 1-based position) with its status and outcome.
SELECT * FROM agentstate_kv_write(p_ns => $1::text, p_key => $2::bytea[], p_op => $3::smallint[],
  p_value => $4::bytea[], p_ct => $5::text[], p_ttl_ms => $6::bigint[], p_exp_kind => $7::smallint[],
  p_exp_version => $8::bigint[], p_fence_name => $9::text[], p_fence_token => $10::bigint[], p_idem => $11::text[],
  p_fp => $12::bytea[], p_deadline_ms => $13::bigint[], p_marked_epoch => $14::bigint[], p_bump => $15::boolean[],
  p_principal => $16::text[], p_request_id => $17::text[], p_wait => $18::boolean, p_marked_by => $19::text[],
  p_marked_ns_epoch => $20::bigint[])
