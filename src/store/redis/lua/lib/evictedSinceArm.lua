--[[
  evictedSinceArm: the eviction check, prepended by the loader
  (cacheScripts.ts) to every script that calls it: the scripts that store an
  entry or raise a known revision (cacheFill, cacheEndWrite, cacheNoteRevision).
  evictedSinceArm(armedKey) is true when a key without a TTL may have been
  evicted since the epoch's arm (CacheEpoch.armedKey: hash {e, s, r, t} of
  the Redis counters evicted_keys, CONFIG SET calls, CONFIG RESETSTAT calls
  and total_commands_processed, read before the epoch began while the
  eviction policy could evict no key without a TTL).
  - Missing arm (evicted itself, or never written): true.
  - INFO stats only, on every call: evicted_keys unchanged since the arm and
    no counter gone back: false, nothing evicted. CONFIG RESETSTAT zeroes
    both counters, so the first of these scripts after it sees them gone back
    (true), unless Redis has meanwhile processed as many commands as before
    the epoch began and evicted exactly as many keys as before it (and, for
    a key without a TTL to go, a CONFIG SET made the policy unsafe, which the
    periodic policy check also sees).
  - The commandstats text is long and costs a single configuration
    measurable Redis CPU per write (BENCHMARKS.md 7b), hence read only when
    evicted_keys moved: then safe (false) only if
    CONFIG SET was not called since (the policy is still the arm's, which
    evicts only keys with a TTL) and CONFIG RESETSTAT was not.
]]
local function evictedSinceArm(armedKey)
  local a = redis.call('HMGET', armedKey, 'e', 's', 'r', 't')
  if not (a[1] and a[2] and a[3] and a[4]) then return true end
  local stats = redis.call('INFO', 'stats')
  local e = tonumber(string.match(stats, 'evicted_keys:(%d+)') or '-1')
  local t = tonumber(string.match(stats, 'total_commands_processed:(%d+)') or '-1')
  local ae, at = tonumber(a[1]), tonumber(a[4])
  if e < ae or t < at then return true end
  if e == ae then return false end
  local cs = redis.call('INFO', 'commandstats')
  -- Redis 7 counts CONFIG subcommands apart; Redis 6 only CONFIG as a whole.
  local s = tonumber(string.match(cs, 'cmdstat_config|set:calls=(%d+)')
    or string.match(cs, 'cmdstat_config:calls=(%d+)') or '0')
  local r = tonumber(string.match(cs, 'cmdstat_config|resetstat:calls=(%d+)') or '0')
  local as, ar = tonumber(a[2]), tonumber(a[3])
  if s < as or r ~= ar then return true end
  return s ~= as
end
