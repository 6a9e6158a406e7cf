-- 0007_cache_registrations: every cache configuration serving a database
-- registers here, so replicas with different caches (or none) see each other
-- and the cache can be trusted whatever the mix (guarantee 3; README, "Mixed
-- cache configurations and rolling changes"; the logic is in
-- functions/agentstate_cache_lease.sql and agentstate_kv_write.sql).
--
-- A cache's identity is an id kept in the cache itself (Redis, under its
-- prefix): one Redis and prefix reached through several URLs is one identity,
-- and a Redis replaced by an empty one is a new identity. Replicas without a
-- cache register as the identity 'none'.

CREATE TABLE cache_registrations (
  identity text PRIMARY KEY,
  -- For operators: "redis HOST:PORT/DB prefix P" or "no cache". Never a secret.
  description text NOT NULL,
  registered_at timestamptz NOT NULL,
  renewed_at timestamptz NOT NULL,
  -- Every cache lease a replica of this identity holds ends by then (a lease
  -- is granted only by a renewal, which moves this to its time + the lease).
  lease_until timestamptz NOT NULL
);

-- The epoch's owner: the one cache identity whose replicas may serve hits in
-- the current epoch (NULL: none may). It changes only with the epoch, so a
-- write marked in the current epoch was marked in the owner's cache.
-- Quiet until: writes that change state are not acknowledged before then
-- (the leases of an owner that was replaced may still be in use until then).
ALTER TABLE agentstate_state
  ADD COLUMN cache_owner text,
  ADD COLUMN cache_quiet_until timestamptz;

-- How long a write must wait before it is acknowledged, when a cache that
-- did not see it may still serve an older state (NULL: no wait).
ALTER TYPE agentstate_kv_write_result ADD ATTRIBUTE wait_ms bigint;
