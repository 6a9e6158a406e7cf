-- event_append: a batch of AppendEvents in one statement, in autocommit
-- (src/store/postgres/functions/agentstate_event_append.sql names and
-- explains every parameter and status). Appends are to distinct streams,
-- sorted by namespace and stream. Parameters are passed by name (sql.ts
-- byName): each p_name below is bound from the field of that name.
-- For the batch: p_ns text (its one namespace). One element per append: p_stream text[], p_exp_kind smallint[],
-- p_exp_version bigint[], p_count int[], p_fence_name text[],
-- p_fence_token bigint[], p_deadline_ms bigint[], p_principal text[],
-- p_request_id text[]; one per event (the events
-- of every append, in order): p_ids uuid[], p_types text[], p_data bytea[],
-- p_metadata jsonb[], p_fp bytea[]; for the batch: p_wait boolean.
-- Returns per append: idx (1-based), status, current_version, first_version,
-- first_position, revision, fence_last.
SELECT * FROM agentstate_event_append(p_ns => $1::text, p_stream => $2::text[], p_exp_kind => $3::smallint[],
  p_exp_version => $4::bigint[], p_count => $5::int[], p_ids => $6::uuid[], p_types => $7::text[],
  p_data => $8::bytea[], p_metadata => $9::jsonb[], p_fp => $10::bytea[], p_fence_name => $11::text[],
  p_fence_token => $12::bigint[], p_deadline_ms => $13::bigint[], p_principal => $14::text[], p_request_id => $15::text[],
  p_wait => $16::boolean)
