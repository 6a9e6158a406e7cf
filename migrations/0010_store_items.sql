-- 0010_store_items: StoreService's items (LangGraph's BaseStore), JSON
-- documents grouped by a path of labels inside an agentstate namespace.
--
-- `path` is LangGraph's "namespace" tuple (renamed: here a namespace is the
-- tenant), stored as its labels joined by "." (labels never contain one) in
-- the "C" collation, so a search under a path prefix P is the primary key
-- range path = P or P || '.' <= path < P || '/' ('/' follows '.').
-- The primary key leads with `namespace`, as every table's does
-- (ARCHITECTURE.md, partition-ready). Items are outside the namespace's
-- revision sequence and history log (last writer wins).
--
-- TTL: `ttl_ms` is the item's time to live (NULL: none), `expires_at` the
-- instant it lapses; a refreshing read sets expires_at = now() + ttl_ms. An
-- expired item reads as absent; the janitor deletes it (store_expire).
CREATE TABLE store_items (
  namespace text NOT NULL,
  path text COLLATE "C" NOT NULL,
  key text NOT NULL,
  value jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  ttl_ms bigint,
  expires_at timestamptz,
  PRIMARY KEY (namespace, path, key),
  CHECK ((ttl_ms IS NULL) = (expires_at IS NULL))
);

-- Filters: equality conditions become one containment test (value @> ...).
CREATE INDEX store_items_value ON store_items USING gin (value jsonb_path_ops);

-- The janitor's sweep of expired items.
CREATE INDEX store_items_expires ON store_items (expires_at) WHERE expires_at IS NOT NULL;
