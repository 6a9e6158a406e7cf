-- kv_insert_placeholder: claims an absent key with an invisible-to-others
-- version-0 row, so the write holds a row lock before it takes the revision
-- lock (lock order is always key, then revision: no deadlocks). The row is
-- either overwritten by kv_put or removed by kv_delete_placeholder before commit.
-- $1 namespace text, $2 key bytea
-- Returns one row when claimed, none when a concurrent writer created the key first.
INSERT INTO kv (namespace, key, value, version, create_revision, mod_revision, created_at, updated_at)
VALUES ($1, $2, ''::bytea, 0, 0, 0, now(), now())
ON CONFLICT (namespace, key) DO NOTHING
RETURNING 1 AS claimed
