--[[
  cacheEndWrite: after COMMIT, install the written state, drop older cached
  state, void fill tokens handed out during the write, and clear this marker.
  Installing is left to the writer that began last, only once no other
  writer is in flight on the key (a cached entry never coexists with a live
  marker, so a hit never depends on a marker: a marker that expires or is
  evicted uncovers no entry), and only if no writer that ended while markers
  were live reported a higher revision: the last to begin is not always the
  last to commit. Nothing is done when a key without a TTL may have been
  evicted since the epoch was armed (see cacheFill): the writer then moves
  the epoch, as when the install fails.
  KEYS[1] alive, KEYS[2] entry, KEYS[3] markers, KEYS[4] token,
  KEYS[5] writers hash {w = id of the writer that began last, r = highest revision ended}
  KEYS[6] known      highest revision of the key's namespace known committed in this epoch
                     (string, no TTL; created here when absent)
  KEYS[7] armed      the epoch's arm (see cacheFill)
  ARGV[1] expected alive value, ARGV[2] writer id,
  ARGV[3] observed revision (0: nothing to install), ARGV[4] metadata JSON,
  ARGV[5] value bytes, ARGV[6] entry TTL ms
  Result: EPOCH_GONE (-1) alive mismatch; EVICTED (-2) keys may have been evicted
          (nothing changed); INSTALLED (1); NOT_INSTALLED (0)
]]
local EPOCH_GONE = -1
local EVICTED = -2
local NOT_INSTALLED = 0
local INSTALLED = 1
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return EPOCH_GONE end
if evictedSinceArm(KEYS[7]) then return EVICTED end
local w = redis.call('HMGET', KEYS[5], 'w', 'r')
local isLast = w[1] == ARGV[2]
local maxEnded = tonumber(w[2] or '0')
local rev = tonumber(ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('DEL', KEYS[4])
local others = redis.call('ZCARD', KEYS[3])
if others == 0 then
  redis.call('DEL', KEYS[5])
elseif rev > maxEnded then
  redis.call('HSET', KEYS[5], 'r', ARGV[3])
end
if rev <= 0 then return NOT_INSTALLED end
if rev > tonumber(redis.call('GET', KEYS[6]) or '0') then redis.call('SET', KEYS[6], ARGV[3]) end
local cur = redis.call('HGET', KEYS[2], 'r')
if cur and tonumber(cur) >= rev then return NOT_INSTALLED end
redis.call('DEL', KEYS[2])
if not isLast or rev < maxEnded or others > 0 then return NOT_INSTALLED end
redis.call('HSET', KEYS[2], 'r', ARGV[3], 'm', ARGV[4], 'b', ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return INSTALLED
