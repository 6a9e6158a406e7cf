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
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return EPOCH_GONE end
if evictedSinceArm(KEYS[3]) then return EVICTED end
if tonumber(ARGV[2]) > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], ARGV[2]) end
return DONE
