-- lock_holder: the current holder's owner (null when the lock is free or
-- expired, or was taken without one), and the namespace's revision.
-- $1 namespace text, $2 name text
-- Returns one row: `owner`, `store_revision`.
SELECT (SELECT owner FROM locks WHERE namespace = $1 AND name = $2 AND expires_at > clock_timestamp()) AS owner,
       coalesce((SELECT revision FROM namespace_revisions WHERE namespace = $1), 0) AS store_revision
