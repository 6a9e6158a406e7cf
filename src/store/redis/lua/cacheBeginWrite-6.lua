--[[
  cacheBeginWrite: mark a write in flight before its Postgres transaction
  starts. Readers bypass the cache while any marker is live; the cached entry
  and any outstanding fill token are dropped. Markers carry a logical expiry
  (not a Redis TTL) so that volatile-* eviction never removes them early; the
  writer never commits after its marker expires.
  KEYS[1] alive, KEYS[2] entry, KEYS[3] markers, KEYS[4] token,
  KEYS[5] writers hash {w = id of the writer that began last, r = highest revision ended}
  KEYS[6] known      highest revision of the key's namespace known committed in this epoch (string, no TTL)
  ARGV[1] expected alive value, ARGV[2] writer id, ARGV[3] marker TTL ms
  Result: EPOCH_GONE (-1) alive mismatch; MARKED (1) marked
]]
local EPOCH_GONE = -1
local MARKED = 1
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return EPOCH_GONE end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[2])
redis.call('HSET', KEYS[5], 'w', ARGV[2])
redis.call('DEL', KEYS[2], KEYS[4])
return MARKED
