--[[
  lockAcquire: take a Redlock lock on one master. Run by redlock's public
  acquire() on every master (a vote "for" is a result equal to the number of
  KEYS). The holder's owner is published beside it by lockOwner right after.
  KEYS[1] lock key (value: the lock's secret), KEYS[2] owner key
  ARGV[1] secret, ARGV[2] TTL in ms
  Result: VOTE_FOR (2) taken (any owner key left by an older holder deleted, so it is never reported for
          this one); VOTE_AGAINST (0) the lock key exists (held by someone), nothing changed
]]
local VOTE_FOR = 2
local VOTE_AGAINST = 0
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return VOTE_AGAINST end
redis.call('DEL', KEYS[2])
return VOTE_FOR
