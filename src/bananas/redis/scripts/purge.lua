-- purge: remove ready job ids from the consumers' (right) end of one ready or parked
-- list and mark each removed job's record cancelled (``bananas purge``).
--
-- KEYS[1]        the list: bananas:route:{rk}:queue:{p}[:job:{name}] or bananas:queue:{p}
-- KEYS[2..N+1]   the job records bananas:job:{id}, in the order of the ids below
-- ARGV[1]        seconds a cancelled record is kept (its expiry)
-- ARGV[2..]      id_1, record_1, ..., id_N, record_N: ids the caller read from the list's
--                right end, rightmost first, each with its record marked cancelled
--                ("" leaves a record that could not be read as it is)
--
-- Returns the number of ids removed. Ids are popped from the right while each popped id
-- is one of the given ones; a given id a worker took meanwhile is simply not there any
-- more. An id that was not given (pushed back on the right since the caller looked) is
-- put back where it was and the script stops: the caller reads the list again. So a
-- record is marked only for a job this script removed while it was waiting.
local ttl = tonumber(ARGV[1])
local n = #KEYS - 1
local index = {}
for i = 1, n do
  index[ARGV[2 * i]] = i
end
local removed = 0
for _ = 1, n do
  local id = redis.call('RPOP', KEYS[1])
  if not id then
    break
  end
  local i = index[id]
  if not i then
    redis.call('RPUSH', KEYS[1], id)
    break
  end
  local record = ARGV[2 * i + 1]
  if record ~= '' then
    redis.call('SET', KEYS[1 + i], record, 'EX', ttl)
  end
  removed = removed + 1
end
return removed
