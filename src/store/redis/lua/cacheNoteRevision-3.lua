--[[
  cacheNoteRevision: raise a namespace's known revision in the epoch, so cache
  hits report a revision no lower than any write in it acknowledged before them.
  Nothing is done when a key without a TTL may have been evicted since the
  epoch was armed (see cacheFill): an evicted known revision raised here would
  be too low; the caller then moves the epoch.
  KEYS[1] alive, KEYS[2] the namespace's known revision (string, no TTL; created when absent),
  KEYS[3] armed      the epoch's arm (see cacheFill)
  ARGV[1] expected alive value, ARGV[2] revision
  Result: EPOCH_GONE (-1) alive mismatch; EVICTED (-2) keys may have been evicted; DONE (1)
]]
local EPOCH_GONE = -1
local EVICTED = -2
local DONE = 1
-- The eviction check (the same in every script that stores an entry or
-- raises a known revision; CacheEpoch "the arm"): true when a key without a
-- TTL may have been evicted since the arm's snapshot, which was taken before
-- the epoch began and while the eviction policy could evict none (noeviction,
-- volatile-*). Safe when no key was evicted since (evicted_keys unchanged),
-- or when CONFIG SET was not called since (the policy is still the snapshot's).
-- CONFIG RESETSTAT shows as a counter gone back: unsafe.
local function evictedSinceArm(armedKey)
  local a = redis.call('HMGET', armedKey, 'e', 's', 'r', 't')
  if not (a[1] and a[2] and a[3] and a[4]) then return true end
  local info = redis.call('INFO', 'stats') .. redis.call('INFO', 'commandstats')
  local e = tonumber(string.match(info, 'evicted_keys:(%d+)') or '-1')
  local t = tonumber(string.match(info, 'total_commands_processed:(%d+)') or '-1')
  local s = tonumber(string.match(info, 'cmdstat_config|set:calls=(%d+)')
    or string.match(info, 'cmdstat_config:calls=(%d+)') or '0')
  local r = tonumber(string.match(info, 'cmdstat_config|resetstat:calls=(%d+)') or '0')
  local ae, as, ar, at = tonumber(a[1]), tonumber(a[2]), tonumber(a[3]), tonumber(a[4])
  if e < ae or s < as or r ~= ar or t < at then return true end
  return e ~= ae and s ~= as
end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return EPOCH_GONE end
if evictedSinceArm(KEYS[3]) then return EVICTED end
if tonumber(ARGV[2]) > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], ARGV[2]) end
return DONE
