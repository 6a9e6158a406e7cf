-- 0006_namespace_revisions: one revision sequence per namespace instead of
-- the store-wide agentstate_state.revision (DESIGN.md, data model: nothing
-- orders changes across namespaces). Every write takes its namespace's row of
-- namespace_revisions last, right before commit, so a namespace's revisions
-- follow its commit order with no gaps, and writes to different namespaces
-- never wait for each other's row locks.
--
-- Existing data is renumbered per namespace, keeping its order: the
-- revisions a namespace's rows refer to (history, event positions, keys'
-- create/mod revisions, the items in idempotency outcomes) become 1..n in
-- their old order; any other revision g a namespace's row records (the
-- `revision` of a stored idempotency reply) becomes the number of that
-- namespace's changes at or before g, i.e. the namespace's revision then.
-- Fencing tokens and locks store no revisions. agentstate_state keeps the
-- store-wide cache epoch; its `revision` column is no longer written (a
-- replica of the previous release still reads it: upgrade every replica).

-- Writers of the previous release finish first, and none start meanwhile.
LOCK TABLE agentstate_state, kv, kv_history, events, idempotency_keys IN EXCLUSIVE MODE;

CREATE TABLE namespace_revisions (
  namespace text PRIMARY KEY,
  revision bigint NOT NULL
);

-- Every change revision each namespace's rows refer to, numbered in order.
CREATE TEMP TABLE agentstate_renumber ON COMMIT DROP AS
SELECT namespace, old, row_number() OVER (PARTITION BY namespace ORDER BY old) AS new
FROM (
  SELECT namespace, revision AS old FROM kv_history
  UNION SELECT namespace, position FROM events
  UNION SELECT namespace, create_revision FROM kv WHERE version > 0
  UNION SELECT namespace, mod_revision FROM kv WHERE version > 0
  UNION SELECT namespace, (outcome #>> '{item,cr}')::bigint FROM idempotency_keys
        WHERE jsonb_typeof(outcome -> 'item') = 'object'
  UNION SELECT namespace, (outcome #>> '{item,mr}')::bigint FROM idempotency_keys
        WHERE jsonb_typeof(outcome -> 'item') = 'object'
) r
WHERE old > 0;
CREATE UNIQUE INDEX ON agentstate_renumber (namespace, old);
ANALYZE agentstate_renumber;

-- Keys lead with the namespace (partition-ready; ARCHITECTURE.md): a
-- revision or position is unique only within its namespace now.
ALTER TABLE kv_history DROP CONSTRAINT kv_history_pkey;
UPDATE kv_history h SET revision = m.new FROM agentstate_renumber m
WHERE m.namespace = h.namespace AND m.old = h.revision;
ALTER TABLE kv_history ADD PRIMARY KEY (namespace, revision);

ALTER TABLE events DROP CONSTRAINT events_pkey;
UPDATE events e SET position = m.new FROM agentstate_renumber m
WHERE m.namespace = e.namespace AND m.old = e.position;
ALTER TABLE events ADD PRIMARY KEY (namespace, position);
DROP INDEX events_ns_position; -- the primary key now

UPDATE kv SET create_revision = c.new, mod_revision = m.new
FROM agentstate_renumber c, agentstate_renumber m
WHERE kv.version > 0 AND c.namespace = kv.namespace AND c.old = kv.create_revision
  AND m.namespace = kv.namespace AND m.old = kv.mod_revision;

-- A stored reply's `revision` g (any store revision) becomes the namespace's
-- revision at g: the number of its changes at or before g.
UPDATE idempotency_keys i SET outcome =
  CASE WHEN jsonb_typeof(i.outcome -> 'item') = 'object' THEN
    jsonb_set(jsonb_set(i.outcome,
      '{item,cr}', to_jsonb((SELECT m.new FROM agentstate_renumber m
                             WHERE m.namespace = i.namespace AND m.old = (i.outcome #>> '{item,cr}')::bigint))),
      '{item,mr}', to_jsonb((SELECT m.new FROM agentstate_renumber m
                             WHERE m.namespace = i.namespace AND m.old = (i.outcome #>> '{item,mr}')::bigint)))
  ELSE i.outcome END
  || jsonb_build_object('revision', coalesce((SELECT m.new FROM agentstate_renumber m
                                              WHERE m.namespace = i.namespace AND m.old <= (i.outcome ->> 'revision')::bigint
                                              ORDER BY m.old DESC LIMIT 1), 0))
WHERE i.outcome ? 'revision';

INSERT INTO namespace_revisions (namespace, revision)
SELECT namespace, max(new) FROM agentstate_renumber GROUP BY namespace;

-- Expiry sweeps run one namespace per statement (kv_expire_sweep.sql).
CREATE INDEX kv_ns_expires_at ON kv (namespace, expires_at) WHERE expires_at IS NOT NULL;
