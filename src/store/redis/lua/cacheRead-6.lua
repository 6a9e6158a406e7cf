--[[
  cacheRead: serve a key from the cache, or hand out a fill token on a miss.
  KEYS[1] alive      epoch liveness key; must hold ARGV[1] or the cache is not trusted
  KEYS[2] entry      hash {r = observed revision, m = metadata JSON, b = value bytes}
  KEYS[3] markers    zset writerId -> logical expiry (ms, Redis clock): writes in flight
  KEYS[4] token      fill token (string, with PX)
  KEYS[5] writers    hash {w = writer that began last, r = highest revision ended}; dropped with the last marker
  KEYS[6] known      highest revision of the key's namespace known committed in this epoch
                     (string, no TTL); while absent no hit is served: a miss, whose fill seeds it
  ARGV[1] expected alive value, ARGV[2] candidate fill token, ARGV[3] token TTL ms
  Result: {EPOCH_GONE (-1)} alive mismatch; {WRITE_IN_FLIGHT (0)} read Postgres, do not fill;
          {HIT (1), r, m, b, known} (known: namespace revision the reply reflects, >= r);
          {MISS (2), token} read Postgres, then cacheFill with token
]]
local EPOCH_GONE = -1
local WRITE_IN_FLIGHT = 0
local HIT = 1
local MISS = 2
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {EPOCH_GONE} end
if redis.call('EXISTS', KEYS[3]) == 1 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) > 0 then return {WRITE_IN_FLIGHT} end
  redis.call('DEL', KEYS[5])
end
local v = redis.call('HMGET', KEYS[2], 'r', 'm', 'b')
local known = redis.call('GET', KEYS[6])
if v[1] and known then return {HIT, v[1], v[2], v[3], known} end
local tok = redis.call('GET', KEYS[4])
if not tok then
  tok = ARGV[2]
  redis.call('SET', KEYS[4], tok, 'PX', ARGV[3])
end
return {MISS, tok}
