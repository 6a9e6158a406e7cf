-- 0002_locks: locks kept in Postgres (the embedded default, without Redis).
-- With Redis, locks live in Redlock and only fencing_tokens (0001) is used.
CREATE TABLE locks (
  namespace text NOT NULL,
  name text NOT NULL,
  lock_id text NOT NULL,
  owner text NOT NULL DEFAULT '',
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (namespace, name)
);
CREATE INDEX locks_expires_at ON locks (expires_at);
