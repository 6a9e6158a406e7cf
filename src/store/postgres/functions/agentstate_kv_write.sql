-- agentstate_kv_write(p_ns, p_key, ..., p_wait, p_marked_by, p_marked_ns_epoch) -> SETOF agentstate_kv_write_result
-- Requires: agentstate_item_json
--
-- Promises: a batch of KV writes (CompareAndSet, Delete), called in
-- autocommit (server-side group commit). One round trip and one WAL flush
-- serve the whole batch, and the revision rows' locks are held only for the end
-- of the statement and its commit, never across a round trip to the server.
--
-- Revisions are per namespace (namespace_revisions, migrations/0006): each
-- namespace of the batch has its own sequence and its own row, locked in
-- namespace order after every key lock, so batches of different namespaces
-- never wait for each other. The cache epoch is the store's (agentstate_state,
-- with its owner) and the namespace's (its revision row, migrations/0019): a
-- write reads the store's FOR SHARE (writes never wait for each other there;
-- a move waits for them) and holds its namespace's row, so neither can move
-- between the write's check of the epoch it marked in and its commit; a
-- write that moves its namespace's epoch locks the store's row FOR UPDATE
-- instead (the move's number is taken under it: agentstate_cache_lease).
--
-- Per write, in the order given (the server sorts a batch by namespace and
-- key, so concurrent batches claim keys in one order):
--   phase 1 (before the revision locks; lock order is always idempotency key,
--   key, fence, then the namespaces' revision rows in namespace order, then
--   the cache epoch row, shared or, when the epoch moves, exclusive): claim the idempotency key, lock the key's row
--   or claim the absent key with an invisible version-0 placeholder row, read
--   the fence FOR SHARE and compare it;
--   phase 2 (under the revision locks and the epoch row's): drop writes whose
--   deadline has passed, then check each write's condition against the key's
--   state as left by the writes before it in the batch, write the row and its
--   history entry with the namespace's next revision, record the idempotency outcome.
-- What a call costs Postgres is mostly its count of SQL statements (each one
-- an executor start and end, a plan-cache check and a snapshot: BENCHMARKS.md
-- §6, "Fourth pass"), so the common path runs few: per batch, the
-- namespace's revision row, the epoch row (the same statement tells whether
-- it must be locked exclusively after all) and the revision update; per
-- write, the key's row locked or tested (locked and existence in one
-- statement when not waiting), the placeholder of an absent key (then not
-- read again), and the row with its history entry in one statement.
-- With p_wait false (a batch), no write waits for a key or an idempotency key
-- that another transaction holds: it is answered `busy` and nothing of it is
-- written; the server then runs it alone with p_wait true, which waits as a
-- single write always did. So one held key never stalls the batch.
--
-- Parameters: the batch's namespace (p_ns: every write of a batch is in one
-- namespace), one array element per write (all arrays of one length), named
-- below; p_wait for the whole batch. Each history row records the write's
-- p_principal and p_request_id (the audit trail, migrations/0012).
-- Release 3 took p_ns text[] (a namespace per write) and no principal,
-- request id or p_marked_by: that signature stays beside this one for its
-- replicas during a rolling upgrade (migrations/0012), as the wrapper of this
-- function in agentstate_kv_write.release3.sql (migrations/0018).
-- Result: one agentstate_kv_write_result row per write (migrations/0004), in
-- the order given: idx (1-based), status, revision, the key's row after the
-- write (or as found, when not applied), outcome (replayed: the first reply),
-- fence_last, bump_epoch / bump_prev_age_ms when the write moved the
-- cache epoch and must wait it out, and wait_ms: how long a change must wait
-- before it is acknowledged, by the database's count (the leases of the
-- epoch's owner when the write moved it; for every change, a replaced owner's
-- quiet time and the leases on the epochs that earlier moves of the store or
-- the namespace replaced: migrations/0020).
--
-- The cache fence (CacheFence in src/domain/ports.ts): a write marked in the
-- current epoch was marked in its owner's cache (a replica marks only in an
-- epoch its cache owns, and the owner changes only with the epoch:
-- agentstate_cache_lease); a write marked in no epoch and not asking for a
-- bump (a replica without a cache, or whose cache is not the owner) moves
-- the epoch when it has an owner, as a write that could not mark does. A
-- marked write must name the identity it marked under (p_marked_by), and
-- counts as marked in the owner's cache only if that is the owner: a replica
-- of an older release, which marks in its own cache whether it owns the
-- epoch or not and does not register, calls the previous release's
-- signature, whose wrapper passes it NULL (as does the parameter's
-- default), and so takes the path of an unmarked write. A marked write also
-- names the namespace epoch it marked in (p_marked_ns_epoch; NULL: 0, the
-- only one a replica of release 5 knows, which keys namespaces by the store
-- epoch alone). A move (a write that could not mark, or marked in another
-- epoch than the current one, or unmarked while a cache owns the epoch)
-- moves the namespace's epoch only, as agentstate_cache_move does: the store
-- epoch while a replica of release 5 or older may hold a lease
-- (cache_registrations.legacy_until).
--
-- Statuses (the c_ constants below; KvWriteStatus in
-- src/store/postgres/writeStatus.ts): applied; not_applied (the condition
-- failed); replayed (an identical request already used the idempotency key:
-- `outcome` is its first reply); idempotency_key_reused (by a different
-- request); fence_unknown (token never issued); fence_stale (`fence_last` is
-- the latest); deadline_passed (before the write: nothing written); busy
-- (nothing written).
--
-- The condition and version rules are specified by src/domain/casRules.ts
-- (test/integration/kv.casRules.property.test.ts checks this function
-- against it); the outcome JSON is agentstate_item_json's.
CREATE OR REPLACE FUNCTION agentstate_kv_write(
  p_ns text,               -- the batch's namespace (one per batch: a single-shard call under Citus)
  p_key bytea[],           -- key (UTF-8 bytes)
  p_op smallint[],         -- put, delete (c_op_*)
  p_value bytea[],         -- put: the value
  p_ct text[],             -- put: content type
  p_ttl_ms bigint[],       -- put: time to live in ms (NULL: none)
  p_exp_kind smallint[],   -- condition: any, absent, version (c_expect_*)
  p_exp_version bigint[],  -- condition version: the expected version
  p_fence_name text[],     -- fence lock name (NULL: not fenced)
  p_fence_token bigint[],  -- fence token
  p_idem text[],           -- idempotency key (NULL: none)
  p_fp bytea[],            -- request fingerprint (with an idempotency key)
  p_deadline_ms bigint[],  -- ms after this statement's start past which the write must not be made (NULL: none)
  p_marked_epoch bigint[], -- cache epoch the write marked its key in (NULL: none)
  p_bump boolean[],        -- the write could not mark the cache: move the cache epoch
  p_principal text[],      -- audit: who the write is made for ('' with auth off), kept in kv_history
  p_request_id text[],     -- audit: the call's request id, kept in kv_history
  p_wait boolean,          -- false: answer `busy` instead of waiting for a key held by another transaction
  p_marked_by text[] DEFAULT NULL, -- cache identity whose cache holds the write's marker (NULL: unmarked,
                           -- or a caller of release 3 or older, through its wrapper: treated as not the owner)
  p_marked_ns_epoch bigint[] DEFAULT NULL -- the namespace epoch the write marked its key in (NULL: 0;
                           -- a caller of release 5 or older sends none)
) RETURNS SETOF agentstate_kv_write_result
LANGUAGE plpgsql AS $fn$
DECLARE
  -- Statuses (KvWriteStatus in src/store/postgres/writeStatus.ts).
  c_pending CONSTANT smallint := 0; -- not decided yet; never returned
  c_applied CONSTANT smallint := 1;
  c_not_applied CONSTANT smallint := 2;
  c_replayed CONSTANT smallint := 3;
  c_idempotency_key_reused CONSTANT smallint := 4;
  c_fence_unknown CONSTANT smallint := 5;
  c_fence_stale CONSTANT smallint := 6;
  c_deadline_passed CONSTANT smallint := 7;
  c_busy CONSTANT smallint := 8;
  -- p_op (KvWriteOp); kv_history.op uses the same numbers.
  c_op_put CONSTANT smallint := 1;
  c_op_delete CONSTANT smallint := 2;
  -- p_exp_kind (KvExpectedKind).
  c_expect_any CONSTANT smallint := 0;
  c_expect_absent CONSTANT smallint := 1;
  c_expect_version CONSTANT smallint := 2;
  -- Class (first key) of the transaction advisory locks that claimers of an
  -- idempotency key hold: "ast1" in ASCII, apart from the migration lock.
  c_idem_lock_class CONSTANT int := 1634956081;

  n int := coalesce(cardinality(p_key), 0);
  st smallint[] := array_fill(c_pending, ARRAY[n]);
  claimed boolean[] := array_fill(false, ARRAY[n]);
  placeholder boolean[] := array_fill(false, ARRAY[n]);
  must_wait boolean[] := array_fill(false, ARRAY[n]);
  res agentstate_kv_write_result[] := array_fill(NULL::agentstate_kv_write_result, ARRAY[n]);
  r agentstate_kv_write_result;
  cur kv;
  nw kv;
  has boolean;
  -- Phase 1 without waiting: the key's row was locked; it exists (held by another transaction, if not locked).
  locked boolean;
  present boolean;
  -- The key's row exists (its placeholder included), as `FOUND` after reading it.
  found_row boolean;
  holds boolean;
  c int;
  f bigint;
  fp bytea;
  oc jsonb;
  rev bigint;
  -- Whether a write is still pending after phase 1, and whether one of those
  -- asks for a move (p_bump): set as phase 1 decides each write.
  pending boolean := false;
  pending_bump boolean := false;
  -- The namespace's revision as locked (rev: as advanced by the batch).
  rev0 bigint;
  -- The epoch row read FOR SHARE must be locked FOR UPDATE after all.
  upgrade boolean;
  epoch bigint;
  epoch_at timestamptz;
  -- The epoch's owner (the cache identity that may serve in it), the end of
  -- its leases, and the quiet time of a replaced owner (migrations/0007).
  e_owner text;
  e_quiet timestamptz;
  owner_until timestamptz;
  wait_until timestamptz;
  wait bigint;
  changed boolean[] := array_fill(false, ARRAY[n]);
  bump boolean := false;
  prev_age bigint;
  -- The batch namespace's cache epoch: the store epoch it last moved in, its
  -- number then, when; and its epoch in the current store epoch (0: none).
  ns_move_epoch bigint;
  ns_move_seq bigint;
  ns_moved_at timestamptz;
  -- Until when leases on the epochs the namespace's moves replaced can last (migrations/0020).
  ns_wait_until timestamptz;
  ns_epoch bigint;
  move_seq bigint;
  i int;
BEGIN
  -- Phase 1: locks, in order: idempotency key, key, fence.
  FOR i IN 1..n LOOP
    r := ROW(i, c_pending, NULL, p_key[i], NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    IF p_idem[i] IS NOT NULL THEN
      -- Every claimer of an idempotency key holds this advisory lock first, so
      -- a batch can tell (without waiting) that another transaction is claiming it.
      IF p_wait THEN
        PERFORM pg_advisory_xact_lock(c_idem_lock_class, hashtext(p_ns || E'\x1f' || p_idem[i]));
      ELSIF NOT pg_try_advisory_xact_lock(c_idem_lock_class, hashtext(p_ns || E'\x1f' || p_idem[i])) THEN
        st[i] := c_busy;
      END IF;
      IF st[i] = c_pending THEN
        INSERT INTO idempotency_keys (namespace, idempotency_key, fingerprint, outcome)
        VALUES (p_ns, p_idem[i], p_fp[i], '{}'::jsonb)
        ON CONFLICT (namespace, idempotency_key) DO NOTHING;
        GET DIAGNOSTICS c = ROW_COUNT;
        IF c = 1 THEN
          claimed[i] := true;
        ELSE
          SELECT k.fingerprint, k.outcome INTO fp, oc
          FROM idempotency_keys k WHERE k.namespace = p_ns AND k.idempotency_key = p_idem[i];
          IF NOT FOUND OR oc = '{}'::jsonb THEN
            -- Claimed earlier in this batch (or the record was just trimmed): run it alone afterwards.
            st[i] := c_busy;
          ELSIF fp IS DISTINCT FROM p_fp[i] THEN
            st[i] := c_idempotency_key_reused;
          ELSE
            st[i] := c_replayed;
            r.outcome := oc;
          END IF;
        END IF;
      END IF;
    END IF;

    -- The key's row, locked; or the absent key, claimed with a placeholder row.
    IF st[i] = c_pending THEN
      LOOP
        IF p_wait THEN
          PERFORM 1 FROM kv WHERE kv.namespace = p_ns AND kv.key = p_key[i] FOR UPDATE;
          EXIT WHEN FOUND;
        ELSE
          -- One statement: the row, locked unless another transaction holds
          -- it, and whether it exists at all.
          SELECT (SELECT true FROM kv WHERE kv.namespace = p_ns AND kv.key = p_key[i] FOR UPDATE SKIP LOCKED),
                 EXISTS (SELECT 1 FROM kv WHERE kv.namespace = p_ns AND kv.key = p_key[i])
          INTO locked, present;
          EXIT WHEN locked;
          IF present THEN
            st[i] := c_busy; -- the row exists and another transaction holds it
            EXIT;
          END IF;
        END IF;
        INSERT INTO kv (namespace, key, value, version, create_revision, mod_revision, created_at, updated_at)
        VALUES (p_ns, p_key[i], ''::bytea, 0, 0, 0, now(), now())
        ON CONFLICT (namespace, key) DO NOTHING;
        GET DIAGNOSTICS c = ROW_COUNT;
        IF c = 1 THEN
          placeholder[i] := true;
          EXIT;
        END IF;
        -- A concurrent writer created the key and committed: lock its row instead.
      END LOOP;
    END IF;

    IF st[i] = c_pending AND p_fence_name[i] IS NOT NULL THEN
      -- FOR SHARE: issuing a newer token waits for this commit.
      SELECT t.last_token INTO f FROM fencing_tokens t
      WHERE t.namespace = p_ns AND t.name = p_fence_name[i] FOR SHARE;
      IF NOT FOUND OR p_fence_token[i] > f THEN
        st[i] := c_fence_unknown;
      ELSIF p_fence_token[i] < f THEN
        st[i] := c_fence_stale;
        r.fence_last := f;
      END IF;
    END IF;

    IF st[i] <> c_pending AND claimed[i] THEN
      DELETE FROM idempotency_keys k WHERE k.namespace = p_ns AND k.idempotency_key = p_idem[i];
      claimed[i] := false;
    END IF;
    r.status := st[i];
    res[i] := r;
    IF st[i] = c_pending THEN
      pending := true;
      pending_bump := pending_bump OR p_bump[i];
    END IF;
  END LOOP;

  -- Phase 2: under the revision lock of the batch's namespace.
  IF pending THEN
    LOOP
      SELECT nr.revision, nr.cache_move_epoch, nr.cache_move_seq, nr.cache_moved_at, nr.cache_move_wait_until
      INTO rev, ns_move_epoch, ns_move_seq, ns_moved_at, ns_wait_until
      FROM namespace_revisions nr WHERE nr.namespace = p_ns FOR UPDATE;
      EXIT WHEN FOUND;
      INSERT INTO namespace_revisions (namespace, revision) VALUES (p_ns, 0) ON CONFLICT (namespace) DO NOTHING;
    END LOOP;
    rev0 := rev;
    -- The cache epoch must not move between the check of a marked epoch
    -- below and this commit (readers of a newer epoch never saw the marker):
    -- the namespace's is held with its revision row; the store's is read FOR
    -- SHARE, which writes do not wait on among themselves, but a move does.
    -- A write that will move the epoch (could not mark, or marked in another
    -- epoch than the current one) takes it FOR UPDATE; upgrading a share
    -- lock can deadlock with another such write: Postgres then aborts one
    -- statement, which the server runs again (runWriteBatch). A batch that
    -- asks for a move (p_bump) takes it FOR UPDATE at once; any other reads
    -- the row once, FOR SHARE, and upgrades only when the epoch moved under
    -- a marked write or a write reaches an owned epoch unmarked (one
    -- statement reads the row and tells whether it must: must_wait's test).
    -- A write marked in no epoch (its replica has no cache, or its cache
    -- does not own the epoch: a mixed deployment) is invisible to the owner's
    -- cache: it moves the epoch too when the epoch has an owner.
    IF pending_bump THEN
      SELECT s.cache_epoch, s.cache_epoch_at, s.cache_owner, s.cache_quiet_until INTO epoch, epoch_at, e_owner, e_quiet
      FROM agentstate_state s WHERE s.id = 1 FOR UPDATE;
    ELSE
      SELECT s.cache_epoch, s.cache_epoch_at, s.cache_owner, s.cache_quiet_until,
             EXISTS (SELECT 1 FROM generate_series(1, n) AS x WHERE st[x] = c_pending
                     AND ((p_marked_epoch[x] IS NOT NULL
                           AND (p_marked_epoch[x] <> s.cache_epoch
                                OR coalesce(p_marked_ns_epoch[x], 0)
                                   <> CASE WHEN ns_move_epoch = s.cache_epoch THEN ns_move_seq ELSE 0 END))
                          OR (s.cache_owner IS NOT NULL
                              AND (p_marked_epoch[x] IS NULL OR p_marked_by[x] IS DISTINCT FROM s.cache_owner))))
      INTO epoch, epoch_at, e_owner, e_quiet, upgrade
      FROM agentstate_state s WHERE s.id = 1 FOR SHARE;
      IF upgrade THEN
        SELECT s.cache_epoch, s.cache_epoch_at, s.cache_owner, s.cache_quiet_until INTO epoch, epoch_at, e_owner, e_quiet
        FROM agentstate_state s WHERE s.id = 1 FOR UPDATE;
      END IF;
    END IF;
    ns_epoch := CASE WHEN ns_move_epoch = epoch THEN ns_move_seq ELSE 0 END;
    FOR i IN 1..n LOOP
      CONTINUE WHEN st[i] <> c_pending;
      r := res[i];
      IF p_deadline_ms[i] IS NOT NULL
         AND clock_timestamp() > statement_timestamp() + p_deadline_ms[i] * interval '1 millisecond' THEN
        st[i] := c_deadline_passed;
        r.status := c_deadline_passed;
        IF claimed[i] THEN
          DELETE FROM idempotency_keys k WHERE k.namespace = p_ns AND k.idempotency_key = p_idem[i];
        END IF;
        res[i] := r;
        CONTINUE;
      END IF;

      IF placeholder[i] THEN
        -- The placeholder this write made in phase 1, as made: an earlier
        -- write of the batch to this key would have locked or made the row
        -- first, and this one would have found it. No need to read it.
        found_row := true;
        has := false;
      ELSE
        SELECT * INTO cur FROM kv WHERE kv.namespace = p_ns AND kv.key = p_key[i];
        found_row := FOUND;
        has := found_row AND cur.version > 0 AND (cur.expires_at IS NULL OR cur.expires_at > now());
      END IF;
      holds := CASE p_exp_kind[i]
                 WHEN c_expect_any THEN true
                 WHEN c_expect_absent THEN NOT has
                 ELSE has AND cur.version = p_exp_version[i] -- c_expect_version
               END;
      IF NOT holds THEN
        st[i] := c_not_applied;
        r.status := c_not_applied;
        r.revision := rev;
        IF has THEN
          r := ROW(i, c_not_applied, rev, cur.key, cur.value, cur.content_type, cur.version, cur.create_revision,
                   cur.mod_revision, cur.created_at, cur.updated_at, cur.expires_at, NULL, NULL, NULL, NULL, NULL);
        END IF;
        IF claimed[i] THEN
          oc := jsonb_build_object('applied', false, 'revision', rev,
                                   'item', CASE WHEN has THEN agentstate_item_json(cur) ELSE NULL END);
        END IF;
      ELSIF p_op[i] = c_op_put THEN
        rev := rev + 1;
        -- The row and its history entry: one statement.
        IF found_row THEN
          WITH w AS (
            UPDATE kv SET
              value = p_value[i], content_type = p_ct[i],
              version = CASE WHEN has THEN cur.version + 1 ELSE 1 END,
              create_revision = CASE WHEN has THEN cur.create_revision ELSE rev END,
              created_at = CASE WHEN has THEN cur.created_at ELSE now() END,
              mod_revision = rev, updated_at = now(),
              expires_at = CASE WHEN p_ttl_ms[i] IS NULL THEN NULL ELSE now() + p_ttl_ms[i] * interval '1 millisecond' END
            WHERE kv.namespace = p_ns AND kv.key = p_key[i]
            RETURNING kv.*
          ), h AS (
            INSERT INTO kv_history (revision, namespace, key, op, version, value, content_type, expires_at, created_at,
                                    principal, request_id)
            SELECT rev, p_ns, p_key[i], c_op_put, w.version, w.value, w.content_type, w.expires_at, now(),
                   p_principal[i], p_request_id[i]
            FROM w
          )
          SELECT * INTO nw FROM w;
        ELSE
          -- Deleted earlier in this batch (its row lock is still held): create it anew.
          WITH w AS (
            INSERT INTO kv (namespace, key, value, content_type, version, create_revision, mod_revision,
                            created_at, updated_at, expires_at)
            VALUES (p_ns, p_key[i], p_value[i], p_ct[i], 1, rev, rev, now(), now(),
                    CASE WHEN p_ttl_ms[i] IS NULL THEN NULL ELSE now() + p_ttl_ms[i] * interval '1 millisecond' END)
            RETURNING kv.*
          ), h AS (
            INSERT INTO kv_history (revision, namespace, key, op, version, value, content_type, expires_at, created_at,
                                    principal, request_id)
            SELECT rev, p_ns, p_key[i], c_op_put, w.version, w.value, w.content_type, w.expires_at, now(),
                   p_principal[i], p_request_id[i]
            FROM w
          )
          SELECT * INTO nw FROM w;
        END IF;
        st[i] := c_applied;
        placeholder[i] := false; -- now the key's row
        -- The value is the caller's own: not sent back.
        r := ROW(i, c_applied, rev, nw.key, NULL, nw.content_type, nw.version, nw.create_revision, nw.mod_revision,
                 nw.created_at, nw.updated_at, nw.expires_at, NULL, NULL, NULL, NULL, NULL);
        IF claimed[i] THEN
          oc := jsonb_build_object('applied', true, 'revision', rev, 'item', agentstate_item_json(nw));
        END IF;
        changed[i] := true;
      ELSIF has THEN
        rev := rev + 1;
        WITH d AS (DELETE FROM kv WHERE kv.namespace = p_ns AND kv.key = p_key[i])
        INSERT INTO kv_history (revision, namespace, key, op, version, created_at, principal, request_id)
        VALUES (rev, p_ns, p_key[i], c_op_delete, cur.version, now(), p_principal[i], p_request_id[i]);
        st[i] := c_applied;
        r := ROW(i, c_applied, rev, cur.key, cur.value, cur.content_type, cur.version, cur.create_revision,
                 cur.mod_revision, cur.created_at, cur.updated_at, cur.expires_at, NULL, NULL, NULL, NULL, NULL);
        IF claimed[i] THEN
          oc := jsonb_build_object('applied', true, 'revision', rev, 'item', agentstate_item_json(cur));
        END IF;
        changed[i] := true;
      ELSE
        -- Deleting an absent (or expired) key whose condition holds: nothing changes.
        st[i] := c_applied;
        r.status := c_applied;
        r.revision := rev;
        IF claimed[i] THEN
          oc := jsonb_build_object('applied', true, 'revision', rev, 'item', NULL);
        END IF;
      END IF;
      -- A change moves the epoch (and waits it out) when it asked to, was
      -- marked in another epoch than the current one, or reaches an owned
      -- epoch unmarked or marked by another identity; a write that changed
      -- nothing, only when it asked to.
      IF changed[i] THEN
        must_wait[i] := p_bump[i]
                        OR (p_marked_epoch[i] IS NOT NULL
                            AND (p_marked_epoch[i] <> epoch OR coalesce(p_marked_ns_epoch[i], 0) <> ns_epoch))
                        OR (e_owner IS NOT NULL AND (p_marked_epoch[i] IS NULL OR p_marked_by[i] IS DISTINCT FROM e_owner));
      ELSE
        must_wait[i] := p_bump[i];
      END IF;
      IF claimed[i] THEN
        UPDATE idempotency_keys k SET outcome = oc WHERE k.namespace = p_ns AND k.idempotency_key = p_idem[i];
      END IF;
      bump := bump OR must_wait[i];
      res[i] := r;
    END LOOP;

    IF rev <> rev0 THEN
      UPDATE namespace_revisions SET revision = rev WHERE namespace = p_ns;
    END IF;
    IF bump THEN
      -- Held FOR UPDATE since the check above (bump is set only when it was taken so).
      -- The owner's replicas read the epoch FOR SHARE after each renewal, so
      -- no renewal this does not see can lease the replaced epoch: every
      -- lease on it ends by owner_until, which the move records (migrations/
      -- 0020) so that later changes in the new epoch wait it out too.
      IF e_owner IS NOT NULL THEN
        SELECT g.lease_until INTO owner_until FROM cache_registrations g WHERE g.identity = e_owner;
      END IF;
      -- clock_timestamp(), not now(): an epoch must not look older than it is.
      IF EXISTS (SELECT 1 FROM cache_registrations g WHERE g.legacy_until > clock_timestamp()) THEN
        -- A replica of release 5 or older may hold a lease: it knows only the store epoch.
        prev_age := (extract(epoch FROM clock_timestamp() - epoch_at) * 1000)::bigint;
        epoch := epoch + 1;
        UPDATE agentstate_state SET cache_epoch = epoch, cache_epoch_at = clock_timestamp(),
          cache_quiet_until = CASE WHEN owner_until > clock_timestamp()
                                   THEN greatest(cache_quiet_until, owner_until) ELSE cache_quiet_until END
        WHERE id = 1;
      ELSE
        -- The namespace's epoch alone (its row is held since phase 2 began).
        prev_age := (extract(epoch FROM clock_timestamp()
                       - CASE WHEN ns_epoch > 0 THEN ns_moved_at ELSE epoch_at END) * 1000)::bigint;
        UPDATE agentstate_state SET cache_move_seq = cache_move_seq + 1 WHERE id = 1
        RETURNING cache_move_seq INTO move_seq;
        UPDATE namespace_revisions SET cache_move_epoch = epoch, cache_move_seq = move_seq,
          cache_moved_at = clock_timestamp(),
          cache_move_wait_until = CASE WHEN owner_until > clock_timestamp()
                                       THEN greatest(cache_move_wait_until, owner_until)
                                       ELSE cache_move_wait_until END
        WHERE namespace = p_ns;
      END IF;
    END IF;
    -- Changes wait out the owner's leases when they moved the epoch, a
    -- replaced owner's quiet time and the leases on the epochs earlier store
    -- moves replaced (cache_quiet_until), and those on the epochs the
    -- namespace's earlier moves replaced (cache_move_wait_until): a replica
    -- that has read the new epoch marks there, and its change must not be
    -- acknowledged while another still serves the replaced epoch's keys.
    wait_until := greatest(e_quiet, owner_until, ns_wait_until);
    IF wait_until > clock_timestamp() THEN
      wait := ceil(extract(epoch FROM (wait_until - clock_timestamp())) * 1000)::bigint;
    END IF;
  END IF;

  FOR i IN 1..n LOOP
    -- A placeholder that no write turned into a key.
    IF placeholder[i] THEN
      DELETE FROM kv WHERE kv.namespace = p_ns AND kv.key = p_key[i] AND kv.version = 0;
    END IF;
    r := res[i];
    IF must_wait[i] THEN
      r.bump_epoch := epoch;
      r.bump_prev_age_ms := prev_age;
    END IF;
    IF must_wait[i] OR changed[i] THEN
      r.wait_ms := wait;
    END IF;
    RETURN NEXT r;
  END LOOP;
END
$fn$;
