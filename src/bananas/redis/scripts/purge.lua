-- purge: remove ready job ids from the consumers' (right) end of one ready or parked
-- list and mark each removed job cancelled, as ``cancel`` does for a waiting job
-- (``bananas purge``).
--
-- KEYS[1]             the list: bananas:route:<rk>:queue:<p>[:job:<name>] or bananas:queue:<p>
-- KEYS[2..N+1]        the job records  bananas:job:<id>, in the order of the ids below
-- KEYS[N+2..2N+1]     their results    bananas:result:<id> (hash), same order
-- ARGV[1]  seconds a cancelled record is kept (its expiry)
-- ARGV[2]  seconds the "cancelled" result is kept (0 stores none)
-- ARGV[3..]  per id, in order: id, record marked cancelled ("" leaves a record that could
--            not be read as it is, and stores no result), result channel
--            bananas:result:notify:<id>, F (number of result hash values), then F
--            field/value items
--            The ids are those the caller read from the list's right end, rightmost first.
--
-- Returns the number of ids removed. Ids are popped from the right while each popped id
-- is one of the given ones; a given id a worker took meanwhile is simply not there any
-- more. An id that was not given (pushed back on the right since the caller looked) is
-- put back where it was and the script stops: the caller reads the list again. So a job
-- is marked only if this script removed it while it was waiting.
local record_ttl = tonumber(ARGV[1])
local result_ttl = tonumber(ARGV[2])
local n = (#KEYS - 1) / 2
local slot, at = {}, {}
local a = 3
for i = 1, n do
  slot[ARGV[a]] = i
  at[i] = a
  a = a + 4 + tonumber(ARGV[a + 3])
end
local removed = 0
for _ = 1, n do
  local id = redis.call('RPOP', KEYS[1])
  if not id then
    break
  end
  local i = slot[id]
  if not i then
    redis.call('RPUSH', KEYS[1], id)
    break
  end
  local p = at[i]
  local record = ARGV[p + 1]
  if record ~= '' then
    redis.call('SET', KEYS[1 + i], record, 'EX', record_ttl)
    local count = tonumber(ARGV[p + 3])
    if result_ttl > 0 and count > 0 then
      redis.call('DEL', KEYS[1 + n + i])
      redis.call('HSET', KEYS[1 + n + i], unpack(ARGV, p + 4, p + 3 + count))
      redis.call('EXPIRE', KEYS[1 + n + i], result_ttl)
      notify(ARGV[p + 2], 'ready')
    end
  end
  removed = removed + 1
end
return removed
