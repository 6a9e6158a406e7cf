--[[
  cacheEndWrite: after COMMIT, for each write of one batch (one namespace,
  so one hash slot on a cluster; a batch of one is a single write): install
  the written state, drop older cached state, void fill tokens handed out
  during the write, and clear this marker. Installing is left to the writer
  that began last, only once no other writer is in flight on the key (a
  cached entry never coexists with a live marker, so a hit never depends on
  a marker: a marker that expires or is evicted uncovers no entry), and only
  if no writer that ended while markers were live reported a higher
  revision: the last to begin is not always the last to commit. Nothing is
  done when a key without a TTL may have been evicted since the epoch was
  armed (see cacheFill): the writers then move the epoch, as when the install
  fails. The eviction check runs once per call, before the first write whose
  epoch is current: the script is atomic, so what it found holds for every
  write after it (Redis evicts between commands, never inside a script).
  Each write's steps are those of a call of its own, in the batch's order.
  Called with the number of keys first (3 + 4 per write).
  KEYS[1] alive      the epoch's alive key (of the namespace's slot)
  KEYS[2] known      highest revision of the namespace known committed in this epoch
                     (string, no TTL; created here when absent)
  KEYS[3] armed      the epoch's arm (see cacheFill)
  then per write i (from 0), at 4 + 4i: entry, markers,
  token, writers hash {w = id of the writer that began last, r = highest revision ended}
  ARGV per write i, at 1 + 6i: expected alive value, writer id,
  observed revision (0: nothing to install), metadata JSON, value bytes, entry TTL ms
  Result: one code per write, in order: EPOCH_GONE (-1) alive mismatch;
          EVICTED (-2) keys may have been evicted (nothing changed);
          INSTALLED (1); NOT_INSTALLED (0)
]]
local EPOCH_GONE = -1
local EVICTED = -2
local NOT_INSTALLED = 0
local INSTALLED = 1
local alive = redis.call('GET', KEYS[1])
local checked = nil
local out = {}
for i = 0, (#KEYS - 3) / 4 - 1 do
  local k, a = 4 + 4 * i, 1 + 6 * i
  local entry, markers, token, writers = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local code
  if alive ~= ARGV[a] then
    code = EPOCH_GONE
  else
    if checked == nil then checked = evictedSinceArm(KEYS[3]) end
    if checked then
      code = EVICTED
    else
      local w = redis.call('HMGET', writers, 'w', 'r')
      local isLast = w[1] == ARGV[a + 1]
      local maxEnded = tonumber(w[2] or '0')
      local rev = tonumber(ARGV[a + 2])
      redis.call('ZREM', markers, ARGV[a + 1])
      redis.call('DEL', token)
      local others = redis.call('ZCARD', markers)
      if others == 0 then
        redis.call('DEL', writers)
      elseif rev > maxEnded then
        redis.call('HSET', writers, 'r', ARGV[a + 2])
      end
      code = NOT_INSTALLED
      if rev > 0 then
        if rev > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], ARGV[a + 2]) end
        local cur = redis.call('HGET', entry, 'r')
        if not (cur and tonumber(cur) >= rev) then
          redis.call('DEL', entry)
          if isLast and rev >= maxEnded and others == 0 then
            redis.call('HSET', entry, 'r', ARGV[a + 2], 'm', ARGV[a + 3], 'b', ARGV[a + 4])
            redis.call('PEXPIRE', entry, ARGV[a + 5])
            code = INSTALLED
          end
        end
      end
    end
  end
  out[#out + 1] = code
end
return out
