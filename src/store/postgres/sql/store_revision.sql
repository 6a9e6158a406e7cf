-- store_revision: the namespace's current revision (no lock taken; 0 before its first change).
-- $1 namespace text
SELECT coalesce((SELECT revision FROM namespace_revisions WHERE namespace = $1), 0) AS store_revision
