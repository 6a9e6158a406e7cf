--[[
  lockRelease: release a Redlock lock held under a secret, and its owner key
  with it. Run by redlock on every master (a vote "for" is a result equal to
  the number of KEYS); also how a partial or given-back acquisition is undone.
  KEYS[1] lock key, KEYS[2] owner key
  ARGV[1] secret
  Result: VOTE_FOR (2) released; VOTE_AGAINST (0) the lock is not held under ARGV[1] here (free, or
          another holder's, whose keys are left alone)
]]
local VOTE_FOR = 2
local VOTE_AGAINST = 0
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return VOTE_AGAINST end
redis.call('DEL', KEYS[1], KEYS[2])
return VOTE_FOR
