-- kv_expire_namespaces: the namespaces holding expired keys (up to $1 of
-- them), for the janitor to sweep one namespace per statement
-- (kv_expire_sweep). A read across namespaces, by a background job only: on a
-- partitioned store it runs on every shard (ARCHITECTURE.md).
-- $1 limit int
SELECT DISTINCT namespace FROM (
  SELECT namespace FROM kv WHERE expires_at <= now() AND version > 0 ORDER BY expires_at LIMIT $1
) v
