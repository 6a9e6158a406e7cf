--[[
  cacheNoteRevision: raise a namespace's known revision in the epoch, so cache
  hits report a revision no lower than any write in it acknowledged before them.
  KEYS[1] alive, KEYS[2] the namespace's known revision (string, no TTL; created when absent)
  ARGV[1] expected alive value, ARGV[2] revision
  Result: EPOCH_GONE (-1) alive mismatch; DONE (1)
]]
local EPOCH_GONE = -1
local DONE = 1
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return EPOCH_GONE end
if tonumber(ARGV[2]) > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], ARGV[2]) end
return DONE
