-- lock_holder: the current holder's owner, if the lock is held.
-- $1 namespace text, $2 name text
SELECT owner FROM locks WHERE namespace = $1 AND name = $2 AND expires_at > clock_timestamp()
