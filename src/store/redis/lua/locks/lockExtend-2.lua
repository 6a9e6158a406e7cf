--[[
  lockExtend: extend a Redlock lock held under a secret, and its owner key
  with it. Run by redlock on every master (a vote "for" is a result equal to
  the number of KEYS).
  KEYS[1] lock key, KEYS[2] owner key
  ARGV[1] secret, ARGV[2] new TTL in ms
  Result: VOTE_FOR (2) extended; VOTE_AGAINST (0) the lock is not held under ARGV[1] here, nothing changed
]]
local VOTE_FOR = 2
local VOTE_AGAINST = 0
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return VOTE_AGAINST end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return VOTE_FOR
