-- agentstate_cache_lease(p_identity, p_previous, p_description, p_lease_ms, p_may_own,
--   p_ns_epochs, p_ns_epoch, p_ns_after, p_ns_limit)
--   -> TABLE (epoch, age_ms, owner, quiet_ms, others, ns_moved, ns_move_seq, ns_age_ms, ns_more)
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
--
-- Namespace epochs (migrations/0019): a namespace's epoch moves alone when a
-- write could not mark its key (agentstate_kv_write, agentstate_cache_move).
-- A caller that keys namespaces by their epochs (p_ns_epochs, release 6 on)
-- passes the store epoch it last read (p_ns_epoch) and the last move it knows
-- in it (p_ns_after), and gets the moves after it in the current store epoch,
-- in order, at most p_ns_limit (ns_more: there were more): each namespace's
-- epoch (ns_move_seq) and its age in ms. They are read after the epoch row
-- FOR SHARE, and every move takes that row FOR UPDATE to number itself, so
-- the list holds every move numbered up to the row's cache_move_seq. When
-- p_ns_epoch is not the current store epoch, the list starts at its first move.
-- A caller of release 5 or older (p_ns_epochs false, the default; and a
-- cache, p_may_own) keys namespaces by the store epoch alone: its renewal
-- extends its registration's legacy_until, until which every move is
-- store-wide (the movers read it under the epoch row's exclusive lock), and
-- it takes the epoch row FOR UPDATE: if a namespace has moved in the current
-- store epoch, it moves the store epoch, so the epoch it leases holds none.
CREATE OR REPLACE FUNCTION agentstate_cache_lease(
  p_identity text,
  p_previous text,
  p_description text,
  p_lease_ms bigint,
  p_may_own boolean,
  p_ns_epochs boolean DEFAULT false,
  p_ns_epoch bigint DEFAULT NULL,
  p_ns_after bigint DEFAULT 0,
  p_ns_limit int DEFAULT 5000
) RETURNS TABLE (epoch bigint, age_ms bigint, owner text, quiet_ms bigint, others text[],
                 ns_moved text[], ns_move_seq bigint[], ns_age_ms bigint[], ns_more boolean)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
  s agentstate_state;
  alone boolean;
  change boolean := false;
  owner_until timestamptz;
  -- A caller of an older release that keys namespaces by the store epoch alone.
  legacy boolean := p_identity IS NOT NULL AND p_may_own AND NOT coalesce(p_ns_epochs, false);
  ns_from bigint;
  moved text[];
  seqs bigint[];
  ages bigint[];
  more boolean := false;
BEGIN
  IF p_identity IS NOT NULL THEN
    INSERT INTO cache_registrations AS r (identity, description, registered_at, renewed_at, lease_until, legacy_until)
    VALUES (p_identity, p_description, clock_timestamp(), clock_timestamp(),
            clock_timestamp() + p_lease_ms * interval '1 millisecond',
            CASE WHEN legacy THEN clock_timestamp() + p_lease_ms * interval '1 millisecond' END)
    ON CONFLICT (identity) DO UPDATE SET
      description = excluded.description,
      registered_at = CASE WHEN r.lease_until <= clock_timestamp() THEN clock_timestamp() ELSE r.registered_at END,
      renewed_at = clock_timestamp(),
      lease_until = greatest(r.lease_until, clock_timestamp() + p_lease_ms * interval '1 millisecond'),
      legacy_until = CASE WHEN legacy
                          THEN greatest(r.legacy_until, clock_timestamp() + p_lease_ms * interval '1 millisecond')
                          ELSE r.legacy_until END;

    -- Decided on a plain read, then under the lock the decision needs: a
    -- change of owner locks the epoch row FOR UPDATE (it moves it), a renewal
    -- FOR SHARE (so it reads the epoch only after any write that moved it).
    SELECT * INTO s FROM agentstate_state WHERE id = 1;
    alone := p_may_own AND NOT EXISTS (
      SELECT 1 FROM cache_registrations r
      WHERE r.identity <> p_identity AND r.identity IS DISTINCT FROM p_previous
        AND r.lease_until > clock_timestamp());
    change := s.cache_owner IS DISTINCT FROM p_identity AND (s.cache_owner IS NOT NULL OR alone);
    IF change OR legacy THEN
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
  ELSIF legacy AND EXISTS (SELECT 1 FROM namespace_revisions nr WHERE nr.cache_move_epoch = s.cache_epoch) THEN
    -- Held FOR UPDATE since the read above: no move is made until this
    -- commit, and every one after it sees the registration and is store-wide.
    -- Changes made in the new epoch wait out the leases on the replaced one
    -- (cache_quiet_until, migrations/0020), as after any move.
    SELECT r.lease_until INTO owner_until FROM cache_registrations r WHERE r.identity = s.cache_owner;
    UPDATE agentstate_state SET cache_epoch = cache_epoch + 1, cache_epoch_at = clock_timestamp(),
      cache_quiet_until = CASE
        WHEN owner_until IS NULL OR owner_until <= clock_timestamp() THEN cache_quiet_until
        ELSE greatest(cache_quiet_until, owner_until) END
    WHERE id = 1
    RETURNING * INTO s;
  END IF;

  IF coalesce(p_ns_epochs, false) THEN
    ns_from := CASE WHEN p_ns_epoch = s.cache_epoch THEN coalesce(p_ns_after, 0) ELSE 0 END;
    SELECT coalesce(array_agg(m.namespace ORDER BY m.cache_move_seq), ARRAY[]::text[]),
           coalesce(array_agg(m.cache_move_seq ORDER BY m.cache_move_seq), ARRAY[]::bigint[]),
           coalesce(array_agg((extract(epoch FROM (clock_timestamp() - m.cache_moved_at)) * 1000)::bigint
                              ORDER BY m.cache_move_seq), ARRAY[]::bigint[])
    INTO moved, seqs, ages
    FROM (SELECT nr.namespace, nr.cache_move_seq, nr.cache_moved_at FROM namespace_revisions nr
          WHERE nr.cache_move_epoch = s.cache_epoch AND nr.cache_move_seq > ns_from
          ORDER BY nr.cache_move_seq LIMIT p_ns_limit + 1) m;
    IF cardinality(moved) > p_ns_limit THEN
      more := true;
      moved := moved[1:p_ns_limit];
      seqs := seqs[1:p_ns_limit];
      ages := ages[1:p_ns_limit];
    END IF;
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
      ORDER BY r.identity),
    moved, seqs, ages, more;
END
$fn$;
