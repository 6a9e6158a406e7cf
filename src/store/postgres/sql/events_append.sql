-- events_append: takes one revision per event (last, under the revision row
-- lock), inserts the batch with consecutive positions and stream versions,
-- bumps the stream's version and wakes subscribers (NOTIFY is delivered at commit).
-- $1 namespace text, $2 stream text, $3 current stream version bigint, $4 count int,
-- $5 ids uuid[], $6 types text[], $7 data bytea[], $8 metadata jsonb[], $9 fingerprints bytea[]
-- Returns `first_position` and `created_at`.
WITH rev AS (
  UPDATE agentstate_state SET revision = revision + $4::int WHERE id = 1
  RETURNING revision - $4::int AS base, now() AS ts
), ins AS (
  INSERT INTO events (position, namespace, stream, stream_version, event_id, type, data, metadata, fingerprint, created_at)
  SELECT rev.base + e.ord, $1, $2, $3::bigint + e.ord, e.id, e.type, e.data, e.metadata, e.fp, rev.ts
  FROM rev, unnest($5::uuid[], $6::text[], $7::bytea[], $8::jsonb[], $9::bytea[]) WITH ORDINALITY AS e(id, type, data, metadata, fp, ord)
  RETURNING 1
), up AS (
  UPDATE streams SET version = $3::bigint + $4::int, updated_at = rev.ts FROM rev
  WHERE streams.namespace = $1 AND streams.stream = $2
  RETURNING 1
)
SELECT rev.base + 1 AS first_position, rev.ts AS created_at, (SELECT count(*) FROM ins) AS inserted,
       pg_notify('agentstate_events', $1) IS NOT NULL AS notified
FROM rev
