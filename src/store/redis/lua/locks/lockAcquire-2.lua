--[[
  lockAcquire: take a Redlock lock on one master and publish its holder's
  owner beside it, in one round trip. Run by redlock on every master (a vote
  "for" is a result equal to the number of KEYS).
  KEYS[1] lock key (value: the lock's secret), KEYS[2] owner key
  ARGV[1] secret, ARGV[2] TTL in ms, ARGV[3] owner ("" when none)
  Result: VOTE_FOR (2) taken (both keys set with the same TTL, so they expire together);
          VOTE_AGAINST (0) the lock key exists (held by someone), nothing changed
]]
local VOTE_FOR = 2
local VOTE_AGAINST = 0
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return VOTE_AGAINST end
if ARGV[3] ~= nil and ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
else
  -- No owner given: never let an older holder's owner be reported for this one.
  redis.call('DEL', KEYS[2])
end
return VOTE_FOR
