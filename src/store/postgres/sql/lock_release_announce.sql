-- lock_release_announce: announces locks released elsewhere (Redlock) on
-- channel agentstate_locks, so waiters on every replica try at once
-- (PgLockReleases); the announcements asked for together share one statement.
-- $1 announcements text[] (NOTIFY payloads: PgLockReleases.payload)
-- Returns one row per announcement, of no use.
SELECT pg_notify('agentstate_locks', p) FROM unnest($1::text[]) AS p
