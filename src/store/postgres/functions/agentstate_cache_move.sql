-- agentstate_cache_move(p_ns, p_if_owned) -> TABLE (epoch, ns_epoch, prev_age_ms, wait_ms)
--
-- Promises: moves the cache epoch of one namespace (migrations/0019) for a
-- change no cache saw or will see: a write whose replica could not mark its
-- key (moved before the write is made: CacheEpoch.fenceBeforeWrite), a change
-- whose namespace's known revision could not be raised (fenceUnnoted), a
-- write or append by a replica whose cache does not own the epoch, or that
-- has none (fenceChange). Other namespaces keep their epochs, so their caches
-- keep serving. While a replica of release 5 or older may hold a cache lease
-- (cache_registrations.legacy_until), which keys every namespace by the store
-- epoch alone, it moves the store epoch instead.
--
-- Lock order as agentstate_kv_write's: the namespace's revision row, then the
-- epoch row FOR UPDATE (the move's number, agentstate_state.cache_move_seq,
-- is taken under it, so a lease read that reads the row FOR SHARE sees every
-- move numbered up to it: agentstate_cache_lease).
--
-- Parameters: p_ns (the namespace), p_if_owned (true: move only while a cache
-- owns the store epoch, since otherwise no cache serves; false: always).
-- Result: one row: the store epoch after the call, the namespace's epoch
-- after it (0: none in this store epoch), the replaced epoch's age in ms
-- (NULL when nothing moved), and wait_ms: how long the change must wait
-- before it is acknowledged, by the database's count (the owner's leases when
-- it moved, a replaced owner's quiet time and the leases on the epochs earlier
-- moves of the store or the namespace replaced in any case: migrations/0020;
-- 0: none).
CREATE OR REPLACE FUNCTION agentstate_cache_move(p_ns text, p_if_owned boolean)
RETURNS TABLE (epoch bigint, ns_epoch bigint, prev_age_ms bigint, wait_ms bigint)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
  nr namespace_revisions;
  s agentstate_state;
  moved boolean := false;
  age bigint;
  nse bigint;
  owner_until timestamptz;
  t timestamptz;
BEGIN
  LOOP
    SELECT * INTO nr FROM namespace_revisions x WHERE x.namespace = p_ns FOR UPDATE;
    EXIT WHEN FOUND;
    INSERT INTO namespace_revisions (namespace, revision) VALUES (p_ns, 0) ON CONFLICT (namespace) DO NOTHING;
  END LOOP;
  SELECT * INTO s FROM agentstate_state x WHERE x.id = 1 FOR UPDATE;
  nse := CASE WHEN nr.cache_move_epoch = s.cache_epoch THEN nr.cache_move_seq ELSE 0 END;
  IF NOT p_if_owned OR s.cache_owner IS NOT NULL THEN
    moved := true;
    -- The owner's replicas read the epoch FOR SHARE after each renewal, so
    -- every lease on the replaced epoch ends by owner_until, which the move
    -- records for the changes made in the new one (migrations/0020).
    IF s.cache_owner IS NOT NULL THEN
      SELECT g.lease_until INTO owner_until FROM cache_registrations g WHERE g.identity = s.cache_owner;
      IF owner_until <= clock_timestamp() THEN
        owner_until := NULL;
      END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM cache_registrations g WHERE g.legacy_until > clock_timestamp()) THEN
      age := (extract(epoch FROM clock_timestamp() - s.cache_epoch_at) * 1000)::bigint;
      UPDATE agentstate_state x SET cache_epoch = x.cache_epoch + 1, cache_epoch_at = clock_timestamp(),
        cache_quiet_until = greatest(x.cache_quiet_until, owner_until)
      WHERE x.id = 1 RETURNING * INTO s;
      nse := 0;
    ELSE
      age := (extract(epoch FROM clock_timestamp()
                - CASE WHEN nse > 0 THEN nr.cache_moved_at ELSE s.cache_epoch_at END) * 1000)::bigint;
      UPDATE agentstate_state x SET cache_move_seq = x.cache_move_seq + 1
      WHERE x.id = 1 RETURNING * INTO s;
      nse := s.cache_move_seq;
      UPDATE namespace_revisions x SET cache_move_epoch = s.cache_epoch, cache_move_seq = nse,
        cache_moved_at = clock_timestamp(),
        cache_move_wait_until = greatest(x.cache_move_wait_until, owner_until)
      WHERE x.namespace = p_ns
      RETURNING * INTO nr;
    END IF;
  END IF;
  -- A change waits out the leases on the epochs this and earlier moves
  -- replaced (the namespace's and the store's), whether or not it moved one.
  t := greatest(s.cache_quiet_until, owner_until, nr.cache_move_wait_until);
  RETURN QUERY SELECT s.cache_epoch, nse, age,
    CASE WHEN t IS NULL OR t <= clock_timestamp() THEN 0::bigint
         ELSE ceil(extract(epoch FROM (t - clock_timestamp())) * 1000)::bigint END;
END
$fn$;
