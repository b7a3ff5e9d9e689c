-- ack: a leased job finished; store its final record and result, drop the lease.
--
-- KEYS[1]  leases        bananas:leases
-- KEYS[2]  lease owners  bananas:lease:owners
-- KEYS[3]  lease routes  bananas:lease:routes (id -> routing key, for limited keys)
-- KEYS[4]  in flight     bananas:limits:inflight (routing key -> jobs in flight)
-- KEYS[5]  job record    bananas:job:<id>
-- KEYS[6]  result        bananas:result:<id> (hash)
-- ARGV[1]  job id
-- ARGV[2]  lease token the caller holds
-- ARGV[3]  job record (JSON, status "completed")
-- ARGV[4]  record TTL in seconds (0 keeps it forever)
-- ARGV[5]  result TTL in seconds (0 stores no result)
-- ARGV[6]  result channel        bananas:result:notify:<id> (message 'ready', the
--          only one the original Go and SDK waiters accept)
-- ARGV[7..]  result hash fields and values: field_1, value_1, field_2, value_2, ...
--
-- Returns 1, or 0 for a late acknowledgement (the lease expired and the job was
-- recovered): nothing is written and the newer delivery stays in charge.
-- A TTL that is not a whole number of seconds in 0..2147483647 is an error reply, given
-- before anything is written (a job is never left without its lease and its record).
-- The notification is published after the result is stored, so a waiter that
-- subscribed first and then reads the hash can never miss it.
local function valid_ttl(value)
  return value ~= nil and value >= 0 and value <= 2147483647 and value == math.floor(value)
end
local ttl, result_ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
if not (valid_ttl(ttl) and valid_ttl(result_ttl)) then
  return redis.error_reply('ack: job ' .. ARGV[1] .. ' has a TTL out of range (0..2147483647 seconds)')
end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
end_lease(ARGV[1])
if ttl > 0 then
  redis.call('SET', KEYS[5], ARGV[3], 'EX', ttl)
else
  redis.call('SET', KEYS[5], ARGV[3])
end
if result_ttl > 0 then
  redis.call('DEL', KEYS[6])
  redis.call('HSET', KEYS[6], unpack(ARGV, 7))
  redis.call('EXPIRE', KEYS[6], result_ttl)
  notify(ARGV[6], 'ready')
end
return 1
