-- lock_release: releases a Postgres-kept lock held under lock_id.
-- $1 namespace text, $2 name text, $3 lock secret text
-- Returns one row when released, none when not held under that id.
DELETE FROM locks WHERE namespace = $1 AND name = $2 AND lock_id = $3 AND expires_at > clock_timestamp()
RETURNING 1 AS released
