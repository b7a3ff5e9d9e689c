-- bury: a leased job failed for good; store its record and failed result, and park it
-- in the dead letters.
--
-- KEYS[1]  leases          bananas:leases
-- KEYS[2]  lease owners    bananas:lease:owners
-- KEYS[3]  lease routes  bananas:lease:routes (id -> routing key, for limited keys)
-- KEYS[4]  in flight     bananas:limits:inflight (routing key -> jobs in flight)
-- KEYS[5]  job record      bananas:job:<id>
-- KEYS[6]  dead letters    bananas:queue:dead
-- KEYS[7]  result          bananas:result:<id> (hash)
-- ARGV[1]  job id
-- ARGV[2]  lease token the caller holds
-- ARGV[3]  job record (JSON, status "failed", error)
-- ARGV[4]  record TTL in seconds (0 keeps it forever)
-- ARGV[5]  dead letter list cap (0 = unbounded); the oldest entries are trimmed
-- ARGV[6]  result TTL in seconds (0 stores no result)
-- ARGV[7]  result channel        bananas:result:notify:<id> (message 'ready', the
--          only one the original Go and SDK waiters accept)
-- ARGV[8..]  result hash fields and values
--
-- Returns 1, or 0 when the caller no longer holds the lease (nothing written).
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
end_lease(ARGV[1])
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('SET', KEYS[5], ARGV[3], 'EX', ttl)
else
  redis.call('SET', KEYS[5], ARGV[3])
end
redis.call('LREM', KEYS[6], 0, ARGV[1])
redis.call('LPUSH', KEYS[6], ARGV[1])
local cap = tonumber(ARGV[5])
if cap > 0 then
  redis.call('LTRIM', KEYS[6], 0, cap - 1)
end
local result_ttl = tonumber(ARGV[6])
if result_ttl > 0 then
  redis.call('DEL', KEYS[7])
  redis.call('HSET', KEYS[7], unpack(ARGV, 8))
  redis.call('EXPIRE', KEYS[7], result_ttl)
  notify(ARGV[7], 'ready')
end
return 1
