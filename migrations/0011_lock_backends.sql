-- 0011_lock_backends: the lock backend each replica of the database keeps its
-- locks in (issue 19), so replicas with different backends (Postgres rows,
-- Redlock over one set of masters, Redlock over another) never grant the same
-- name at once. Each replica renews its row under a lease
-- (PostgresLockBackendRegistry); a replica grants locks only while its row is
-- `serving`, and a row may become serving only when no other backend's serving
-- row is live or still draining (its lease end plus its longest lock TTL, the
-- time by which every lock it granted has expired).
CREATE TABLE lock_backend_replicas (
  replica_id text PRIMARY KEY,
  -- The backend's identity: 'postgres', or 'redlock <host:port/db,...> prefix <p>' (no secrets).
  backend text NOT NULL,
  serving boolean NOT NULL,
  -- The longest lock (TTL and clock margin) the replica may grant, in ms.
  max_lock_ttl_ms bigint NOT NULL,
  lease_until timestamptz NOT NULL,
  registered_at timestamptz NOT NULL DEFAULT now()
);
