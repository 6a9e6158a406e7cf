--[[
  cacheFill: store what a reader read from Postgres after a miss, only if that
  read cannot be stale: the fill token handed out at the miss must still be
  there (every write deletes it when it begins and when it ends; eviction
  deletes it too), no write may be in flight, nothing newer may be cached, and
  no key without a TTL (a write marker, a known revision) may have been
  evicted since the epoch was armed (an evicted marker would hide a write in
  flight; an evicted known revision would be re-seeded here too low).
  KEYS[1] alive, KEYS[2] entry, KEYS[3] markers, KEYS[4] token, KEYS[5] writers,
  KEYS[6] known      highest revision of the key's namespace known committed in this epoch
                     (string, no TTL; created here when absent)
  KEYS[7] armed      the epoch's arm: hash {e, s, r, t} of the Redis counters (no TTL;
                     checked by evictedSinceArm, lua/lib/evictedSinceArm.lua, prepended by the loader)
  ARGV[1] expected alive value, ARGV[2] fill token, ARGV[3] observed revision,
  ARGV[4] metadata JSON, ARGV[5] value bytes, ARGV[6] entry TTL ms
  Result: EPOCH_GONE (-1) alive mismatch; EVICTED (-2) keys may have been evicted
          (nothing changed: move the epoch); REFUSED (0); STORED (1)
]]
local EPOCH_GONE = -1
local EVICTED = -2
local REFUSED = 0
local STORED = 1
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return EPOCH_GONE end
if evictedSinceArm(KEYS[7]) then return EVICTED end
local known = tonumber(redis.call('GET', KEYS[6]) or '0')
if tonumber(ARGV[3]) > known then redis.call('SET', KEYS[6], ARGV[3]) end
if redis.call('GET', KEYS[4]) ~= ARGV[2] then return REFUSED end
if redis.call('EXISTS', KEYS[3]) == 1 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) > 0 then return REFUSED end
  redis.call('DEL', KEYS[5])
end
local cur = redis.call('HGET', KEYS[2], 'r')
if cur and tonumber(cur) >= tonumber(ARGV[3]) then return REFUSED end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'r', ARGV[3], 'm', ARGV[4], 'b', ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return STORED
