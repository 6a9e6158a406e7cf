-- checkpoint_blob_base: what a client's delta needs of its base (a channel
-- value version) when this server does not know it: its whole value's CRC-32,
-- its depth (0: stored whole) and its whole size. $1 namespace, $2 thread_id,
-- $3 checkpoint_ns, $4 channel, $5 version. No row: not stored. The put
-- checks CRC and depth again under the head row lock (agentstate_checkpoint_put).
SELECT b.crc, coalesce(b.depth, 0) AS depth,
       coalesce(b.bytes::bigint, (SELECT sum(octet_length(c.data)) FROM checkpoint_blobs c
                                  WHERE c.namespace = b.namespace AND c.thread_id = b.thread_id
                                    AND c.checkpoint_ns = b.checkpoint_ns AND c.channel = b.channel
                                    AND c.version = b.version)) AS bytes
FROM checkpoint_blobs b
WHERE b.namespace = $1::text AND b.thread_id = $2::text AND b.checkpoint_ns = $3::text AND b.channel = $4::text
  AND b.version = $5::text AND b.chunk = 0
