-- event_append: one AppendEvent, whole, in autocommit (agentstate_event_append,
-- migrations/0005_event_append.sql, says what each status means).
-- $1 namespace text, $2 stream text, $3 expected kind smallint (0 any, 1 no_stream,
-- 2 exists, 3 version), $4 expected version bigint, $5 ids uuid[], $6 types text[],
-- $7 data bytea[], $8 metadata jsonb[], $9 fingerprints bytea[], $10 fence lock name text,
-- $11 fence token bigint, $12 deadline in ms from the statement's start bigint
-- Returns one row: status, current_version, first_version, first_position, revision, fence_last.
SELECT * FROM agentstate_event_append($1::text, $2::text, $3::smallint, $4::bigint, $5::uuid[], $6::text[],
  $7::bytea[], $8::jsonb[], $9::bytea[], $10::text, $11::bigint, $12::bigint)
