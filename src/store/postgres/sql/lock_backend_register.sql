-- lock_backend_register: registers (or renews) this replica's lock backend
-- under a lease, after lock_backend_serialize in the same transaction. The row
-- is serving unless another backend has a serving row that is live or still
-- draining (lease end + its longest lock TTL not yet passed): the first
-- backend to serve keeps the database until all its replicas have gone and
-- their locks have expired. Rows drained for good are deleted.
-- $1 replica_id text, $2 backend text, $3 max_lock_ttl_ms bigint, $4 lease_ms bigint
-- Returns one row: `serving` (this replica may grant locks until its lease
-- ends), `others` (text[]: the other backends of live replicas, the mix; a
-- replica counts as live for one lease past its own, so one late renewal
-- does not make the mix flap),
-- `blocked_until` (when the blocking backend's locks have all expired, if it
-- stopped renewing now; null when serving).
WITH gone AS (
  DELETE FROM lock_backend_replicas
  WHERE replica_id <> $1 AND lease_until + max_lock_ttl_ms * interval '1 millisecond' < clock_timestamp()
), blocking AS (
  SELECT lease_until + max_lock_ttl_ms * interval '1 millisecond' AS drained_at
  FROM lock_backend_replicas
  WHERE replica_id <> $1 AND serving AND backend <> $2
    AND lease_until + max_lock_ttl_ms * interval '1 millisecond' >= clock_timestamp()
), me AS (
  INSERT INTO lock_backend_replicas AS r (replica_id, backend, serving, max_lock_ttl_ms, lease_until)
  VALUES ($1, $2, NOT EXISTS (SELECT 1 FROM blocking), $3, clock_timestamp() + $4::bigint * interval '1 millisecond')
  ON CONFLICT (replica_id) DO UPDATE
    SET backend = EXCLUDED.backend, serving = EXCLUDED.serving,
        max_lock_ttl_ms = EXCLUDED.max_lock_ttl_ms, lease_until = EXCLUDED.lease_until
  RETURNING serving
)
SELECT (SELECT serving FROM me) AS serving,
  ARRAY(SELECT DISTINCT backend FROM lock_backend_replicas
        WHERE replica_id <> $1 AND backend <> $2
          AND lease_until + $4::bigint * interval '1 millisecond' >= clock_timestamp() ORDER BY 1) AS others,
  (SELECT max(drained_at) FROM blocking) AS blocked_until
