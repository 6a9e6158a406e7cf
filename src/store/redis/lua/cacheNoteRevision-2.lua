--[[
  cacheNoteRevision: raise the epoch's known store revision, so cache hits
  report a revision no lower than any write acknowledged before them.
  KEYS[1] alive, KEYS[2] known store revision (string, no TTL)
  ARGV[1] expected alive value, ARGV[2] revision
  Result: -1 alive mismatch; 1 done
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if tonumber(ARGV[2]) > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], ARGV[2]) end
return 1
