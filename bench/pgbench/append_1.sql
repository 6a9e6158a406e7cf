-- pgbench: AppendEvent(expected any) of 1 event(s) of 64 bytes to the client's
-- own stream, the exact transaction PostgresEventStore.appendOnce runs for it:
-- BEGIN; stream_lock (the stream row, locked; its version read with \gset);
-- events_by_ids (the new ids: no row); events_append; COMMIT. The streams
-- 'pgb-s-<client_id>' exist before the run (run.mjs creates them). Event ids
-- are md5(random)::uuid here (an immutable expression: like the service's
-- parameter, it lets events_by_ids use its index), random UUIDs there.
-- Each statement below is src/store/postgres/sql/<name>.sql with its
-- parameters replaced as its "-- src:" line says. bench/run.mjs refuses to run
-- when a statement no longer matches its source (regenerate the bodies with
-- node bench/lib/pgbenchSql.mjs --write).
\set r random(1, 9223372036854775806)
BEGIN;
-- src: stream_lock [gset] | $1='pgbench' | $2='pgb-s-' || :client_id
SELECT version FROM streams WHERE namespace = 'pgbench' AND stream = 'pgb-s-' || :client_id FOR UPDATE \gset
-- src: events_by_ids | $1='pgbench' | $2=@rep(1) md5(:r::text || '-#')::uuid
SELECT event_id::text AS event_id, stream, stream_version, position, fingerprint
FROM events WHERE namespace = 'pgbench' AND event_id = ANY(ARRAY[md5(:r::text || '-1')::uuid]::uuid[])
ORDER BY position;
-- src: events_append | $1='pgbench' | $2='pgb-s-' || :client_id | $3=:version | $4=1 | $5=@rep(1) md5(:r::text || '-#')::uuid | $6=@rep(1) 'bench' | $7=@rep(1) '\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea | $8=@rep(1) '{}'::jsonb | $9=@rep(1) '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
WITH rev AS (
  UPDATE agentstate_state SET revision = revision + 1::int WHERE id = 1
  RETURNING revision - 1::int AS base, now() AS ts
), ins AS (
  INSERT INTO events (position, namespace, stream, stream_version, event_id, type, data, metadata, fingerprint, created_at)
  SELECT rev.base + e.ord, 'pgbench', 'pgb-s-' || :client_id, :version::bigint + e.ord, e.id, e.type, e.data, e.metadata, e.fp, rev.ts
  FROM rev, unnest(ARRAY[md5(:r::text || '-1')::uuid]::uuid[], ARRAY['bench']::text[], ARRAY['\x76767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676767676'::bytea]::bytea[], ARRAY['{}'::jsonb]::jsonb[], ARRAY['\x0000000000000000000000000000000000000000000000000000000000000000'::bytea]::bytea[]) WITH ORDINALITY AS e(id, type, data, metadata, fp, ord)
  RETURNING 1
), up AS (
  UPDATE streams SET version = :version::bigint + 1::int, updated_at = rev.ts FROM rev
  WHERE streams.namespace = 'pgbench' AND streams.stream = 'pgb-s-' || :client_id
  RETURNING 1
)
SELECT rev.base + 1 AS first_position, rev.ts AS created_at, (SELECT count(*) FROM ins) AS inserted,
       pg_notify('agentstate_events', 'pgbench') IS NOT NULL AS notified
FROM rev;
COMMIT;
