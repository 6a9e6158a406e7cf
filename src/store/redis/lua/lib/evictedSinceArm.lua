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
  - INFO stats only, on every call (its two numbers found by infoCount):
    evicted_keys unchanged since the arm and
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
-- The number after the first "name:" of an INFO text, or -1: a plain find,
-- then the digits anchored where it ends (about 1 µs of Redis CPU, where
-- string.match's pattern scan of the whole text takes 3; BENCHMARKS.md 7b).
-- No number right after the first occurrence gives -1, which fails the
-- check, never passes it.
local function infoCount(text, name)
  local at = string.find(text, name .. ':', 1, true)
  local digits = at and string.match(text, '^%d+', at + #name + 1)
  return tonumber(digits or '-1')
end

local function evictedSinceArm(armedKey)
  local a = redis.call('HMGET', armedKey, 'e', 's', 'r', 't')
  if not (a[1] and a[2] and a[3] and a[4]) then return true end
  local stats = redis.call('INFO', 'stats')
  local e = infoCount(stats, 'evicted_keys')
  local t = infoCount(stats, 'total_commands_processed')
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
