-- agentstate_cache_lease(p_identity, p_previous, p_description, p_lease_ms, p_may_own)
--   -> TABLE (epoch, age_ms, owner, quiet_ms, others)
--
-- Promises: renews this replica's cache registration (cache_registrations,
-- migrations/0007) and reads the cache epoch after it, in one call, so that a
-- lease a replica takes from the answer ends before the registration's
-- `lease_until`: a write that must wait out an owner's leases reads that
-- column, and a renewal it did not see reads the epoch only after that write
-- committed (the epoch row is read FOR SHARE, after the renewal).
--
-- Ownership (agentstate_state.cache_owner): one cache identity may serve hits
-- in an epoch; a change of owner always moves the epoch. This call moves it:
--  - takeover: a cache identity (p_may_own) takes the epoch when no other
--    registration is live (its own former identity p_previous aside: the same
--    Redis and prefix emptied or replaced), whoever owned it before;
--  - revoke: otherwise, a live registration that is not the owner (another
--    cache, or 'none', replicas without a cache) leaves the epoch without an
--    owner, so no cache serves while the deployment is mixed.
-- Both set cache_quiet_until to the replaced owner's lease_until: writes are
-- not acknowledged before its leases on the older epochs have ended.
--
-- Parameters: p_identity (NULL: read only, renew nothing; a replica whose
-- cache cannot be reached to confirm its identity), p_previous (the identity
-- this replica had before, NULL if none), p_description (for operators; no
-- secrets), p_lease_ms (this replica's lease), p_may_own (false for 'none').
-- Result: one row: the epoch, its age in ms (database clock), its owner,
-- ms until cache_quiet_until (0 when passed), and the other live
-- registrations as 'identity description' strings (p_previous left out).
CREATE OR REPLACE FUNCTION agentstate_cache_lease(
  p_identity text,
  p_previous text,
  p_description text,
  p_lease_ms bigint,
  p_may_own boolean
) RETURNS TABLE (epoch bigint, age_ms bigint, owner text, quiet_ms bigint, others text[])
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
  s agentstate_state;
  alone boolean;
  change boolean := false;
  owner_until timestamptz;
BEGIN
  IF p_identity IS NOT NULL THEN
    INSERT INTO cache_registrations AS r (identity, description, registered_at, renewed_at, lease_until)
    VALUES (p_identity, p_description, clock_timestamp(), clock_timestamp(),
            clock_timestamp() + p_lease_ms * interval '1 millisecond')
    ON CONFLICT (identity) DO UPDATE SET
      description = excluded.description,
      registered_at = CASE WHEN r.lease_until <= clock_timestamp() THEN clock_timestamp() ELSE r.registered_at END,
      renewed_at = clock_timestamp(),
      lease_until = greatest(r.lease_until, clock_timestamp() + p_lease_ms * interval '1 millisecond');

    -- Decided on a plain read, then under the lock the decision needs: a
    -- change of owner locks the epoch row FOR UPDATE (it moves it), a renewal
    -- FOR SHARE (so it reads the epoch only after any write that moved it).
    SELECT * INTO s FROM agentstate_state WHERE id = 1;
    alone := p_may_own AND NOT EXISTS (
      SELECT 1 FROM cache_registrations r
      WHERE r.identity <> p_identity AND r.identity IS DISTINCT FROM p_previous
        AND r.lease_until > clock_timestamp());
    change := s.cache_owner IS DISTINCT FROM p_identity AND (s.cache_owner IS NOT NULL OR alone);
    IF change THEN
      SELECT * INTO s FROM agentstate_state WHERE id = 1 FOR UPDATE;
      change := s.cache_owner IS DISTINCT FROM p_identity AND (s.cache_owner IS NOT NULL OR alone);
    ELSE
      -- Re-read under the lock; if the owner changed meanwhile, the next call acts on it.
      SELECT * INTO s FROM agentstate_state WHERE id = 1 FOR SHARE;
    END IF;
  ELSE
    SELECT * INTO s FROM agentstate_state WHERE id = 1;
  END IF;

  IF change THEN
    -- The replaced owner's renewals wait for this commit (they read the epoch
    -- row FOR SHARE after renewing), so the lease_until read here bounds
    -- every lease on the epochs it owned.
    SELECT r.lease_until INTO owner_until FROM cache_registrations r WHERE r.identity = s.cache_owner;
    UPDATE agentstate_state SET
      cache_epoch = cache_epoch + 1,
      cache_epoch_at = clock_timestamp(),
      cache_owner = CASE WHEN alone THEN p_identity END,
      cache_quiet_until = CASE
        WHEN owner_until IS NULL OR owner_until <= clock_timestamp() THEN cache_quiet_until
        ELSE greatest(cache_quiet_until, owner_until) END
    WHERE id = 1
    RETURNING * INTO s;
    -- Identities lapsed long ago (emptied or replaced caches) are forgotten.
    DELETE FROM cache_registrations r WHERE r.lease_until < clock_timestamp() - interval '1 day';
  END IF;

  RETURN QUERY SELECT
    s.cache_epoch,
    (extract(epoch FROM (clock_timestamp() - s.cache_epoch_at)) * 1000)::bigint,
    s.cache_owner,
    CASE WHEN s.cache_quiet_until IS NULL OR s.cache_quiet_until <= clock_timestamp() THEN 0
         ELSE ceil(extract(epoch FROM (s.cache_quiet_until - clock_timestamp())) * 1000)::bigint END,
    ARRAY(
      SELECT r.identity || ' ' || r.description FROM cache_registrations r
      WHERE r.identity IS DISTINCT FROM p_identity AND r.identity IS DISTINCT FROM p_previous
        AND r.lease_until > clock_timestamp()
      ORDER BY r.identity);
END
$fn$;
