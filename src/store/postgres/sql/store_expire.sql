-- store_expire: removes up to $1 expired store items, of any namespace (a
-- background sweep by the janitor; items carry no revisions, so no
-- namespace's revision row is taken). Items a writer holds are skipped and
-- picked up by a later sweep.
-- $1 batch size int
DELETE FROM store_items s
USING (
  SELECT namespace, path, key FROM store_items
  WHERE expires_at <= now()
  ORDER BY expires_at
  LIMIT $1::int
  FOR UPDATE SKIP LOCKED
) v
WHERE s.namespace = v.namespace AND s.path = v.path AND s.key = v.key
