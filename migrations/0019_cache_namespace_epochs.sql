-- 0019_cache_namespace_epochs: a cache epoch per namespace (issue 15 part 4).
-- A write that could not mark its key in the cache (or was made by a replica
-- whose cache does not own the epoch, or an append no cache noted) used to
-- move the store-wide epoch (agentstate_state.cache_epoch): every namespace's
-- cache went cold and young at once. Now it moves its own namespace's epoch
-- only; what concerns the cache as a whole (owner change, Redis lost or
-- replaced data, evictions, the eviction policy) still moves the store-wide
-- one. See ARCHITECTURE.md, "A cache epoch per namespace".
--
-- A namespace's epoch within store epoch E is the number of its last move if
-- that move was made in E (cache_move_epoch = E), else 0: a store-wide move
-- starts every namespace afresh at 0, whose Redis keys are the ones a
-- release-5 replica uses for the whole store epoch.
--
-- Moves are numbered by agentstate_state.cache_move_seq, taken under that
-- row's exclusive lock: a lease read (which reads the row FOR SHARE) sees
-- every move numbered up to the value it reads, committed, so "the moves
-- after the last one I know" is a complete, bounded, indexed read.
ALTER TABLE agentstate_state ADD COLUMN cache_move_seq bigint NOT NULL DEFAULT 0;

ALTER TABLE namespace_revisions
  -- The store epoch the namespace's epoch last moved in (NULL: never).
  ADD COLUMN cache_move_epoch bigint,
  -- That move's number (agentstate_state.cache_move_seq): the namespace's epoch in cache_move_epoch.
  ADD COLUMN cache_move_seq bigint,
  -- When it moved (database clock): the namespace's epoch is young for a marker TTL after.
  ADD COLUMN cache_moved_at timestamptz;

-- The lease read: the moves of the current store epoch after the last one a replica knows.
CREATE INDEX namespace_revisions_cache_moves ON namespace_revisions (cache_move_epoch, cache_move_seq)
  WHERE cache_move_epoch IS NOT NULL;

-- Replicas of release 5 or older key every namespace by the store epoch alone
-- and know nothing of namespace moves: while one of them may hold a lease
-- (legacy_until: the end of the leases of those that renewed this identity),
-- every move is made store-wide. Every registration made before this
-- migration is such a replica's.
ALTER TABLE cache_registrations ADD COLUMN legacy_until timestamptz;
UPDATE cache_registrations SET legacy_until = lease_until WHERE identity <> 'none';

-- The lease call gains parameters and result columns, and the write function
-- a parameter (the namespace epoch a write was marked in): CREATE OR REPLACE
-- cannot, so the signatures of release 5 go here and the function files
-- create the new ones right after. Callers of release 5 name their
-- arguments, which the new signatures take with the new ones defaulted.
DROP FUNCTION IF EXISTS agentstate_cache_lease(text, text, text, bigint, boolean);
DROP FUNCTION IF EXISTS agentstate_kv_write(text, bytea[], smallint[], bytea[], text[], bigint[], smallint[],
  bigint[], text[], bigint[], text[], bytea[], bigint[], bigint[], boolean[], text[], text[], boolean, text[]);
