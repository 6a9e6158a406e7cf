-- lock_backend_leave: a replica shutting down ends its lease now; its row
-- drains once the locks it granted have expired (it declares their latest
-- expiry), not after the longest TTL it could have granted.
-- $1 replica_id text, $2 drain_ms bigint (from now, clock margin included)
-- Returns nothing.
UPDATE lock_backend_replicas
SET lease_until = least(lease_until, clock_timestamp()),
    max_lock_ttl_ms = $2::bigint + greatest(0, (extract(epoch FROM clock_timestamp() - least(lease_until, clock_timestamp())) * 1000)::bigint)
WHERE replica_id = $1
