-- event_append: a batch of AppendEvents in one statement, in autocommit
-- (src/store/postgres/functions/agentstate_event_append.sql says what each
-- status means). Appends are to distinct streams, sorted by namespace and stream.
-- $1 namespaces text[], $2 streams text[], $3 expected kinds smallint[] (0 any,
-- 1 no_stream, 2 exists, 3 version), $4 expected versions bigint[], $5 events per
-- append int[], $6 event ids uuid[], $7 types text[], $8 data bytea[], $9 metadata
-- jsonb[], $10 fingerprints bytea[] (the events of every append, in order),
-- $11 fence lock names text[], $12 fence tokens bigint[], $13 deadlines in ms from
-- the statement's start bigint[], $14 wait boolean (false: busy instead of waiting
-- for a held stream row)
-- Returns per append: idx (1-based), status, current_version, first_version,
-- first_position, revision, fence_last.
SELECT * FROM agentstate_event_append($1::text[], $2::text[], $3::smallint[], $4::bigint[], $5::int[],
  $6::uuid[], $7::text[], $8::bytea[], $9::jsonb[], $10::bytea[], $11::text[], $12::bigint[], $13::bigint[],
  $14::boolean)
