-- cancel: an operator cancels a job. A waiting job (ready, parked or scheduled) is taken
-- out of its list or set and marked cancelled in the same step, so it never runs; a
-- running one is asked to stop (its worker writes the final "cancelled" outcome).
--
-- KEYS[1]     job record      bananas:job:<id>
-- KEYS[2]     scheduled       bananas:queue:scheduled
-- KEYS[3]     lease owners    bananas:lease:owners
-- KEYS[4]     cancel request  bananas:cancel:<id>
-- KEYS[5]     result          bananas:result:<id> (hash)
-- KEYS[6..]   every ready list the id may wait in (its routed list, its parked list,
--             the legacy list of its priority)
-- ARGV[1]  job id
-- ARGV[2]  the record as the caller read it (the change applies only to that record)
-- ARGV[3]  the record to store (status "cancelled")
-- ARGV[4]  record TTL in seconds (0 keeps it forever)
-- ARGV[5]  cancel request TTL in seconds
-- ARGV[6]  cancel channel   bananas:cancel (message: the job id)
-- ARGV[7]  result TTL in seconds (0 stores no result)
-- ARGV[8]  result channel   bananas:result:notify:<id>
-- ARGV[9..]  result hash fields and values
--
-- Returns 1 (cancelled before it ran), 2 (running: its worker was asked to stop),
-- 0 (no record) or -1 (the record changed since it was read: read again and retry).
local current = redis.call('GET', KEYS[1])
if not current then
  return 0
end
if current ~= ARGV[2] then
  return -1
end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then
  redis.call('SET', KEYS[4], '1', 'EX', tonumber(ARGV[5]))
  notify(ARGV[6], ARGV[1])
  return 2
end
redis.call('ZREM', KEYS[2], ARGV[1])
for i = 6, #KEYS do
  redis.call('LREM', KEYS[i], 0, ARGV[1])
end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[3])
end
local result_ttl = tonumber(ARGV[7])
if result_ttl > 0 then
  redis.call('DEL', KEYS[5])
  redis.call('HSET', KEYS[5], unpack(ARGV, 9))
  redis.call('EXPIRE', KEYS[5], result_ttl)
  notify(ARGV[8], 'ready')
end
return 1
