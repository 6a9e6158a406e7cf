--[[
  lockOwner: publish a just-acquired lock's owner beside it on one master, if
  the lock there is still held under the secret, with the lock's remaining
  TTL (so the owner never outlives it; extend and release handle both keys).
  Run by RedlockLockStore on every master after acquiring, beside the fencing
  token's issue.
  KEYS[1] lock key, KEYS[2] owner key
  ARGV[1] secret, ARGV[2] owner (not empty)
  Result: SET (1) the owner key was set; NOT_HELD (0) the lock is not held under ARGV[1] here, nothing changed
]]
local SET = 1
local NOT_HELD = 0
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return NOT_HELD end
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return NOT_HELD end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl)
return SET
