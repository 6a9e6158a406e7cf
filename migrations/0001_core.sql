-- 0001_core: versioned keys, the store-wide revision, the history log,
-- idempotency records and fencing tokens.
-- Migrations are append-only: never edit a released file, add a new one.

-- One row. `revision` is the store-wide change counter. Every write takes this
-- row's lock last, right before commit, so revisions are assigned in commit
-- order with no gaps. `cache_epoch` names the current Redis cache generation;
-- it moves when a write could not invalidate the cache (see src/store/redis).
CREATE TABLE agentstate_state (
  id smallint PRIMARY KEY CHECK (id = 1),
  revision bigint NOT NULL,
  cache_epoch bigint NOT NULL,
  cache_epoch_at timestamptz NOT NULL
);
INSERT INTO agentstate_state (id, revision, cache_epoch, cache_epoch_at) VALUES (1, 0, 1, now());

-- Current state of every live key. Keys are stored as UTF-8 bytes so that
-- ordering and prefix ranges are plain byte order on every Postgres.
CREATE TABLE kv (
  namespace text NOT NULL,
  key bytea NOT NULL,
  value bytea NOT NULL,
  content_type text NOT NULL DEFAULT '',
  version bigint NOT NULL,
  create_revision bigint NOT NULL,
  mod_revision bigint NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  expires_at timestamptz,
  PRIMARY KEY (namespace, key)
);
CREATE INDEX kv_expires_at ON kv (expires_at) WHERE expires_at IS NOT NULL;

-- Append-only log of every change (op: 1 put, 2 delete, 3 expire).
CREATE TABLE kv_history (
  revision bigint PRIMARY KEY,
  namespace text NOT NULL,
  key bytea NOT NULL,
  op smallint NOT NULL CHECK (op IN (1, 2, 3)),
  version bigint NOT NULL,
  value bytea,
  content_type text,
  expires_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX kv_history_key ON kv_history (namespace, key, revision);
CREATE INDEX kv_history_created_at ON kv_history (created_at);

-- Idempotency records: the primary key is what makes a retried write take
-- effect once. `outcome` is the first reply, replayed to identical retries.
CREATE TABLE idempotency_keys (
  namespace text NOT NULL,
  idempotency_key text NOT NULL,
  fingerprint bytea NOT NULL,
  outcome jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (namespace, idempotency_key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- Fencing tokens: the last token issued per lock name. Writes carrying a
-- fence compare against this row inside their own transaction.
CREATE TABLE fencing_tokens (
  namespace text NOT NULL,
  name text NOT NULL,
  last_token bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (namespace, name)
);
