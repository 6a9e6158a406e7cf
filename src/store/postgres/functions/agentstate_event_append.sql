-- agentstate_event_append(p_ns, p_stream, ..., p_wait) -> SETOF agentstate_event_append_result
--
-- Promises: AppendEvent for a batch of appends at once, called in autocommit
-- (server-side group commit, as agentstate_kv_write does for KV writes). One
-- round trip and one WAL flush serve the whole batch, and the revision rows'
-- locks are held only for the end of the statement and its commit, never
-- across a round trip to the server. Positions are revisions of the stream's
-- namespace (namespace_revisions, migrations/0006): each namespace has its
-- own sequence, shared with its key writes, and its own row, locked in
-- namespace order after every stream lock.
--
-- The appends of a batch are to distinct streams, sorted by namespace and
-- stream (concurrent batches lock streams in one order). Per append, in order:
--   phase 1 (before the revision locks; lock order: stream row, fence row,
--   then the namespaces' revision rows in namespace order, as key writes):
--   lock the stream's row, or claim a new stream with a version-0 row
--   (removed again if nothing is appended);
--   idempotent retry: if any id was appended before, the append is a replay
--   only if every id was, to this stream, with the same content
--   (fingerprint), in the same order; otherwise it is refused;
--   fence: the token must be the latest issued for the lock name (row read
--   FOR SHARE, so a newer token waits for this append to commit); checked
--   after the replay check, so a retry of a correctly fenced append returns
--   its first outcome even if a newer token exists by now;
--   the expected stream version;
--   phase 2 (under the revision row locks, no more lock waits): drop appends
--   whose deadline has passed, then take one namespace revision per event, insert the
--   events with consecutive positions and stream versions, bump the stream's
--   version.
-- Subscribers are woken by the server once the batch has committed
-- (PgChangeNotifier: one NOTIFY per namespace, outside this transaction),
-- not by a NOTIFY here: Postgres serialises the commits of every notifying
-- transaction on one database-wide lock held through the WAL flush, which
-- capped appends over all namespaces at the rate of one namespace.
-- With p_wait false (a batch), no append waits for a stream row that another
-- transaction holds: it is answered `busy` and nothing of it is written; the
-- server then runs it alone with p_wait true, which waits. So one held stream
-- never stalls the batch.
--
-- Parameters: the batch's namespace (p_ns: every append of a batch is in one
-- namespace); one element per append in p_stream .. p_count and p_fence_name
-- .. p_request_id; one element per event (the events of every append, in
-- order) in p_ids .. p_fp; p_wait for the whole batch. Every event records
-- its append's p_principal and p_request_id in their own columns (the audit
-- trail, migrations/0012), not in its metadata: ReadStream returns what was
-- appended, unchanged.
-- Release 3 took p_ns text[] (a namespace per append) and no principal or
-- request id: a database brought from release 3 keeps that overload beside
-- this one for its replicas during a rolling upgrade (migrations/0012).
-- Result: one agentstate_event_append_result row per append (migrations/0005),
-- in the order given: idx (1-based), status, current_version, first_version,
-- first_position, revision, fence_last, and wait_ms (appended only; NULL: no
-- wait): how long the append must wait before it is acknowledged, until the
-- end of the leases on the epochs the namespace's moves replaced
-- (namespace_revisions.cache_move_wait_until, read with the revision row:
-- migrations/0020) and the store's (agentstate_state.cache_quiet_until): its
-- replica notes its revision in the new epoch while another may still serve
-- the replaced one.
--
-- Statuses (the c_ constants below; EventAppendStatus in
-- src/store/postgres/writeStatus.ts): appended; not_applied (expected
-- version not met, nothing appended; `current_version`); replayed (every id
-- already appended: the first append's `first_version` and
-- `first_position`); id_reused (an id was appended with other content, to
-- another stream, or in another order or batch); partial_replay (some ids
-- were appended and others not); fence_refused (`fence_last`: the latest
-- token, NULL if none was issued); deadline_passed (nothing appended); busy
-- (nothing appended).
-- The expected-version rule is ExpectedStream's in src/domain/events.ts.
-- Two appends of one batch carrying one event id fail the statement with a
-- unique violation on event_id (as does a concurrent append of the same ids
-- to another stream); the server then runs each append alone.
CREATE OR REPLACE FUNCTION agentstate_event_append(
  p_ns text,               -- the batch's namespace (one per batch: a single-shard call under Citus)
  p_stream text[],
  p_exp_kind smallint[],   -- any, no_stream, exists, version (c_expect_*)
  p_exp_version bigint[],  -- kind 3: the expected stream version
  p_count int[],           -- events per append; the event arrays below hold them in this order
  p_ids uuid[],            -- event ids, distinct within an append
  p_types text[],
  p_data bytea[],
  p_metadata jsonb[],
  p_fp bytea[],            -- each event's fingerprint (eventFingerprint in src/domain/events.ts)
  p_fence_name text[],     -- fence lock name (NULL: not fenced)
  p_fence_token bigint[],
  p_deadline_ms bigint[],  -- ms after this statement's start past which nothing may be appended (NULL: none)
  p_principal text[],      -- audit: who the append is made for ('' with auth off), kept on each event
  p_request_id text[],     -- audit: the call's request id, kept on each event
  p_wait boolean           -- false: answer `busy` instead of waiting for a stream row another transaction holds
) RETURNS SETOF agentstate_event_append_result
LANGUAGE plpgsql AS $fn$
DECLARE
  any_appended boolean := false; -- some append of the batch was made (its wait is read)
  -- Statuses (EventAppendStatus in src/store/postgres/writeStatus.ts).
  c_pending CONSTANT smallint := 0; -- not decided yet; never returned
  c_appended CONSTANT smallint := 1;
  c_not_applied CONSTANT smallint := 2;
  c_replayed CONSTANT smallint := 3;
  c_id_reused CONSTANT smallint := 4;
  c_partial_replay CONSTANT smallint := 5;
  c_fence_refused CONSTANT smallint := 6;
  c_deadline_passed CONSTANT smallint := 7;
  c_busy CONSTANT smallint := 8;
  -- p_exp_kind (EventExpectedKind).
  c_expect_any CONSTANT smallint := 0;
  c_expect_no_stream CONSTANT smallint := 1;
  c_expect_exists CONSTANT smallint := 2;
  c_expect_version CONSTANT smallint := 3;

  n int := coalesce(cardinality(p_stream), 0);
  claimed boolean[] := array_fill(false, ARRAY[n]);
  first_ev int[] := array_fill(0, ARRAY[n]);
  res agentstate_event_append_result[] := array_fill(NULL::agentstate_event_append_result, ARRAY[n]);
  r agentstate_event_append_result;
  v bigint;
  k int;
  ids uuid[];
  found_n int;
  mismatch boolean;
  in_order boolean;
  first_ver bigint;
  first_pos bigint;
  f bigint;
  rev bigint;
  -- The batch's namespaces, their revisions as read (locked when an append
  -- in them is pending), and as advanced by the batch.
  nss text[];
  ns_rev0 bigint[];
  ns_rev bigint[];
  j int;
  ts timestamptz;
  -- Until when leases on the epochs the namespace's moves replaced can last.
  ns_wait_until timestamptz;
  wait bigint;
  i int;
BEGIN
  k := 1;
  FOR i IN 1..n LOOP
    first_ev[i] := k;
    k := k + p_count[i];
  END LOOP;

  -- Phase 1: stream rows, replays, fences, expected versions.
  FOR i IN 1..n LOOP
    r := ROW(i, c_pending, NULL, NULL, NULL, NULL, NULL);
    LOOP
      IF p_wait THEN
        SELECT s.version INTO v FROM streams s WHERE s.namespace = p_ns AND s.stream = p_stream[i] FOR UPDATE;
      ELSE
        SELECT s.version INTO v FROM streams s WHERE s.namespace = p_ns AND s.stream = p_stream[i]
          FOR UPDATE SKIP LOCKED;
      END IF;
      EXIT WHEN FOUND;
      IF NOT p_wait AND EXISTS (SELECT 1 FROM streams s WHERE s.namespace = p_ns AND s.stream = p_stream[i]) THEN
        r.status := c_busy; -- the row exists and another transaction holds it
        EXIT;
      END IF;
      INSERT INTO streams (namespace, stream, version) VALUES (p_ns, p_stream[i], 0)
      ON CONFLICT (namespace, stream) DO NOTHING;
      IF FOUND THEN
        claimed[i] := true;
        v := 0;
        EXIT;
      END IF;
    END LOOP;

    IF r.status = c_pending THEN
      r.current_version := v;
      ids := p_ids[first_ev[i]:first_ev[i] + p_count[i] - 1];
      SELECT count(*)::int,
             coalesce(bool_or(e.stream <> p_stream[i] OR e.fingerprint <> p_fp[first_ev[i] - 1 + u.ord]), false),
             min(e.stream_version),
             min(e.position)
        INTO found_n, mismatch, first_ver, first_pos
        FROM unnest(ids) WITH ORDINALITY AS u(id, ord)
        JOIN events e ON e.namespace = p_ns AND e.event_id = u.id;
      IF found_n > 0 THEN
        IF mismatch THEN
          r.status := c_id_reused;
        ELSIF found_n <> p_count[i] THEN
          r.status := c_partial_replay;
        ELSE
          SELECT bool_and(e.stream_version = first_ver + u.ord - 1) INTO in_order
            FROM unnest(ids) WITH ORDINALITY AS u(id, ord)
            JOIN events e ON e.namespace = p_ns AND e.event_id = u.id;
          IF in_order THEN
            r.status := c_replayed;
            r.first_version := first_ver;
            r.first_position := first_pos;
          ELSE
            r.status := c_id_reused;
          END IF;
        END IF;
      ELSIF p_fence_name[i] IS NOT NULL THEN
        SELECT t.last_token INTO f FROM fencing_tokens t
         WHERE t.namespace = p_ns AND t.name = p_fence_name[i] FOR SHARE;
        IF f IS NULL OR f <> p_fence_token[i] THEN
          r.status := c_fence_refused;
          r.fence_last := f;
        END IF;
      END IF;
      IF r.status = c_pending
         AND NOT (p_exp_kind[i] = c_expect_any OR (p_exp_kind[i] = c_expect_no_stream AND v = 0)
                  OR (p_exp_kind[i] = c_expect_exists AND v > 0)
                  OR (p_exp_kind[i] = c_expect_version AND v = p_exp_version[i])) THEN
        r.status := c_not_applied;
      END IF;
    END IF;
    res[i] := r;
  END LOOP;

  -- Phase 2: under the revision row locks of the namespaces with appends
  -- still to be made (a namespace with none is read, not locked: its
  -- refusals report its current revision).
  SELECT array_agg(DISTINCT p_ns ORDER BY p_ns) INTO nss FROM generate_series(1, n) AS x;
  ns_rev0 := array_fill(0::bigint, ARRAY[coalesce(cardinality(nss), 0)]);
  FOR j IN 1..coalesce(cardinality(nss), 0) LOOP
    IF EXISTS (SELECT 1 FROM generate_series(1, n) AS x WHERE p_ns = nss[j] AND (res[x]).status = c_pending) THEN
      LOOP
        SELECT nr.revision, nr.cache_move_wait_until INTO rev, ns_wait_until
        FROM namespace_revisions nr WHERE nr.namespace = nss[j] FOR UPDATE;
        EXIT WHEN FOUND;
        INSERT INTO namespace_revisions (namespace, revision) VALUES (nss[j], 0) ON CONFLICT (namespace) DO NOTHING;
      END LOOP;
    ELSE
      SELECT nr.revision INTO rev FROM namespace_revisions nr WHERE nr.namespace = nss[j];
    END IF;
    ns_rev0[j] := coalesce(rev, 0);
  END LOOP;
  ns_rev := ns_rev0;
  ts := now();
  FOR i IN 1..n LOOP
    IF res[i].status = c_pending AND p_deadline_ms[i] IS NOT NULL
       AND clock_timestamp() > statement_timestamp() + p_deadline_ms[i] * interval '1 millisecond' THEN
      res[i].status := c_deadline_passed;
    END IF;
    IF res[i].status <> c_pending THEN
      IF claimed[i] THEN
        DELETE FROM streams WHERE namespace = p_ns AND stream = p_stream[i] AND version = 0;
      END IF;
      CONTINUE;
    END IF;
    v := res[i].current_version;
    j := array_position(nss, p_ns);
    rev := ns_rev[j];
    INSERT INTO events (position, namespace, stream, stream_version, event_id, type, data, metadata, fingerprint,
                        created_at, principal, request_id)
    SELECT rev + (u.j - first_ev[i] + 1), p_ns, p_stream[i], v + (u.j - first_ev[i] + 1),
           p_ids[u.j], p_types[u.j], p_data[u.j], p_metadata[u.j], p_fp[u.j], ts, p_principal[i], p_request_id[i]
      FROM generate_series(first_ev[i], first_ev[i] + p_count[i] - 1) AS u(j);
    UPDATE streams SET version = v + p_count[i], updated_at = ts
     WHERE namespace = p_ns AND stream = p_stream[i];
    res[i].status := c_appended;
    any_appended := true;
    res[i].current_version := v + p_count[i];
    res[i].first_version := v + 1;
    res[i].first_position := rev + 1;
    rev := rev + p_count[i];
    res[i].revision := rev;
    ns_rev[j] := rev;
  END LOOP;
  FOR j IN 1..coalesce(cardinality(nss), 0) LOOP
    IF ns_rev[j] > ns_rev0[j] THEN
      UPDATE namespace_revisions SET revision = ns_rev[j] WHERE namespace = nss[j];
    END IF;
  END LOOP;
  -- And the store-wide moves' (cache_quiet_until: an owner change, a store
  -- epoch moved by a write, a bump after lost data or evictions): a plain
  -- read of one row, made only for a batch that appended something.
  IF any_appended THEN
    SELECT greatest(ns_wait_until, s.cache_quiet_until) INTO ns_wait_until FROM agentstate_state s WHERE s.id = 1;
  END IF;
  IF ns_wait_until > clock_timestamp() THEN
    wait := ceil(extract(epoch FROM (ns_wait_until - clock_timestamp())) * 1000)::bigint;
  END IF;
  FOR i IN 1..n LOOP
    IF res[i].status <> c_appended THEN
      res[i].revision := ns_rev[array_position(nss, p_ns)];
    ELSE
      res[i].wait_ms := wait;
    END IF;
  END LOOP;
  RETURN QUERY SELECT * FROM unnest(res);
END
$fn$;
