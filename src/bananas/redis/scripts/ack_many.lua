-- ack_many: several ``ack``s in one call (the worker batches completions under load).
--
-- KEYS[1]          leases        bananas:leases
-- KEYS[2]          lease owners  bananas:lease:owners
-- KEYS[3]          lease routes  bananas:lease:routes
-- KEYS[4]          in flight     bananas:limits:inflight
-- KEYS[4+2i-1]     job record    bananas:job:<id_i>     for i = 1..N
-- KEYS[4+2i]       result        bananas:result:<id_i>
-- ARGV, per job i in order, a header of 7 values and then its result fields:
--   id, lease token, job record (JSON, "completed"), record TTL (0 = forever),
--   result TTL (0 = no result), result channel (message 'ready'), F = number of result field/value
--   entries, followed by those F values.
--
-- Returns an array with, per job, 1 (stored), 0 (late acknowledgement: nothing
-- written for that job, exactly as ``ack`` would) or -1 (refused: a TTL is not a whole
-- number of seconds in 0..2147483647; nothing written for that job, where ``ack``
-- answers an error). Each job is handled as ``ack``, on its own: one job's bad values
-- never stop the others of the batch.
local function valid_ttl(value)
  return value ~= nil and value >= 0 and value <= 2147483647 and value == math.floor(value)
end
local out = {}
local a = 1
local n = (#KEYS - 4) / 2
for i = 1, n do
  local id, token, record = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local ttl, result_ttl, channel = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), ARGV[a + 5]
  local f = tonumber(ARGV[a + 6])
  local first_field = a + 7
  a = first_field + f
  if not (valid_ttl(ttl) and valid_ttl(result_ttl)) then
    out[i] = -1
  elseif redis.call('HGET', KEYS[2], id) ~= token then
    out[i] = 0
  else
    end_lease(id)
    if ttl > 0 then
      redis.call('SET', KEYS[3 + 2 * i], record, 'EX', ttl)
    else
      redis.call('SET', KEYS[3 + 2 * i], record)
    end
    if result_ttl > 0 and f > 0 then
      local result_key = KEYS[4 + 2 * i]
      redis.call('DEL', result_key)
      redis.call('HSET', result_key, unpack(ARGV, first_field, first_field + f - 1))
      redis.call('EXPIRE', result_key, result_ttl)
      notify(channel, 'ready')
    end
    out[i] = 1
  end
end
return out
