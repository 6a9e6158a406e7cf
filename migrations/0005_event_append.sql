-- 0005_event_append: the whole AppendEvent as one function, called in
-- autocommit. One round trip instead of five (BEGIN, stream_lock,
-- events_by_ids, events_append, COMMIT), and the revision row's lock is held
-- only for the end of the statement and its commit, never across a round
-- trip to the server, as agentstate_kv_write does for KV writes.
--
-- In order (lock order: stream row, fence row, revision row, as key writes):
--   lock the stream's row, or claim a new stream with a version-0 row (removed
--   again if nothing is appended);
--   idempotent retry: if any id was appended before, the batch is a replay
--   only if every id was, to this stream, with the same content (fingerprint),
--   in the same order; otherwise it is refused;
--   fence: the token must be the latest issued for the lock name (row read
--   FOR SHARE, so a newer token waits for this append to commit); checked
--   after the replay check, so a retry of a correctly fenced append returns
--   its first outcome even if a newer token exists by now;
--   the expected stream version;
--   under the revision row lock: drop the append if its deadline has passed,
--   then take one revision per event, insert the events with consecutive
--   positions and stream versions, bump the stream's version and wake
--   subscribers (NOTIFY is delivered at commit).
--
-- Statuses: 1 appended, 2 expected version not met (nothing appended;
-- `current_version`), 3 replayed (every id already appended: the first
-- append's `first_version` and `first_position`), 4 an id was appended with
-- other content, to another stream, or in another order or batch, 5 some ids
-- were appended and others not, 6 fence refused (`fence_last`: the latest
-- token, NULL if none was issued), 7 deadline passed (nothing appended).
-- The expected-version rule is ExpectedStream's in src/domain/events.ts.
-- A concurrent append of the same ids to another stream makes this one fail
-- with a unique violation on event_id; the server runs it again.

CREATE TYPE agentstate_event_append_result AS (
  status smallint,
  current_version bigint,
  first_version bigint,
  first_position bigint,
  revision bigint,
  fence_last bigint
);

CREATE FUNCTION agentstate_event_append(
  p_ns text,
  p_stream text,
  p_exp_kind smallint,     -- 0 any, 1 no_stream, 2 exists, 3 version
  p_exp_version bigint,    -- kind 3: the expected stream version
  p_ids uuid[],            -- event ids, distinct
  p_types text[],
  p_data bytea[],
  p_metadata jsonb[],
  p_fp bytea[],            -- each event's fingerprint (eventFingerprint in src/domain/events.ts)
  p_fence_name text,       -- fence lock name (NULL: not fenced)
  p_fence_token bigint,
  p_deadline_ms bigint     -- ms after this statement's start past which nothing may be appended (NULL: none)
) RETURNS agentstate_event_append_result
LANGUAGE plpgsql AS $fn$
DECLARE
  n int := coalesce(cardinality(p_ids), 0);
  v bigint;
  claimed boolean := false;
  found_n int;
  mismatch boolean;
  in_order boolean;
  first_ver bigint;
  first_pos bigint;
  f bigint;
  base bigint;
  ts timestamptz;
  r agentstate_event_append_result := ROW(0, NULL, NULL, NULL, NULL, NULL);
BEGIN
  LOOP
    SELECT s.version INTO v FROM streams s WHERE s.namespace = p_ns AND s.stream = p_stream FOR UPDATE;
    EXIT WHEN FOUND;
    INSERT INTO streams (namespace, stream, version) VALUES (p_ns, p_stream, 0)
    ON CONFLICT (namespace, stream) DO NOTHING;
    IF FOUND THEN
      claimed := true;
      v := 0;
      EXIT;
    END IF;
  END LOOP;
  r.current_version := v;

  SELECT count(*)::int,
         coalesce(bool_or(e.stream <> p_stream OR e.fingerprint <> p_fp[u.ord]), false),
         min(e.stream_version),
         min(e.position)
    INTO found_n, mismatch, first_ver, first_pos
    FROM unnest(p_ids) WITH ORDINALITY AS u(id, ord)
    JOIN events e ON e.namespace = p_ns AND e.event_id = u.id;
  IF found_n > 0 THEN
    IF mismatch THEN
      r.status := 4;
    ELSIF found_n <> n THEN
      r.status := 5;
    ELSE
      SELECT bool_and(e.stream_version = first_ver + u.ord - 1) INTO in_order
        FROM unnest(p_ids) WITH ORDINALITY AS u(id, ord)
        JOIN events e ON e.namespace = p_ns AND e.event_id = u.id;
      IF in_order THEN
        r.status := 3;
        r.first_version := first_ver;
        r.first_position := first_pos;
      ELSE
        r.status := 4;
      END IF;
    END IF;
  ELSIF p_fence_name IS NOT NULL THEN
    SELECT t.last_token INTO f FROM fencing_tokens t
      WHERE t.namespace = p_ns AND t.name = p_fence_name FOR SHARE;
    IF f IS NULL OR f <> p_fence_token THEN
      r.status := 6;
      r.fence_last := f;
    END IF;
  END IF;
  IF r.status = 0 AND NOT (p_exp_kind = 0 OR (p_exp_kind = 1 AND v = 0) OR (p_exp_kind = 2 AND v > 0)
                           OR (p_exp_kind = 3 AND v = p_exp_version)) THEN
    r.status := 2;
  END IF;

  IF r.status = 0 THEN
    SELECT s.revision INTO base FROM agentstate_state s WHERE s.id = 1 FOR UPDATE;
    IF p_deadline_ms IS NOT NULL
       AND clock_timestamp() > statement_timestamp() + p_deadline_ms * interval '1 millisecond' THEN
      r.status := 7;
    END IF;
  END IF;

  IF r.status <> 0 THEN
    IF claimed THEN
      DELETE FROM streams WHERE namespace = p_ns AND stream = p_stream AND version = 0;
    END IF;
    SELECT s.revision INTO r.revision FROM agentstate_state s WHERE s.id = 1;
    RETURN r;
  END IF;

  ts := now();
  UPDATE agentstate_state SET revision = revision + n WHERE id = 1;
  INSERT INTO events (position, namespace, stream, stream_version, event_id, type, data, metadata, fingerprint, created_at)
  SELECT base + e.ord, p_ns, p_stream, v + e.ord, e.id, e.type, e.data, e.metadata, e.fp, ts
    FROM unnest(p_ids, p_types, p_data, p_metadata, p_fp) WITH ORDINALITY AS e(id, type, data, metadata, fp, ord);
  UPDATE streams SET version = v + n, updated_at = ts WHERE namespace = p_ns AND stream = p_stream;
  PERFORM pg_notify('agentstate_events', p_ns);
  r.status := 1;
  r.current_version := v + n;
  r.first_version := v + 1;
  r.first_position := base + 1;
  r.revision := base + n;
  RETURN r;
END
$fn$;
