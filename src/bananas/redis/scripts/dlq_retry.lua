-- dlq_retry: take one job out of the dead letters and make it ready again, atomically.
--
-- KEYS[1]  dead letters          bananas:queue:dead
-- KEYS[2]  job record            bananas:job:<id>
-- KEYS[3]  ready queue           bananas:route:<job's routing_key>:queue:<job's priority>
-- KEYS[4]  routing-key registry  bananas:routing_keys
-- KEYS[5]  result                bananas:result:<id> (the failed outcome is dropped)
-- ARGV[1]  job id
-- ARGV[2]  job record as the caller read it (compare-and-set guard)
-- ARGV[3]  new job record (JSON, status "pending", attempts 0); stored without a TTL
-- ARGV[4]  routing key
-- ARGV[5]  wake-up channel of the routing key   bananas:route:<routing_key>:notify
--
-- Returns 1 when the job was moved; 0 when the id is not in the dead letters (already
-- retried or purged by someone else); -1 when the record changed or expired since the
-- caller read it. In both refusals nothing is written.
-- The record is stored without a TTL: if the job fails again, bury gives it a fresh
-- one and it comes back to the dead letters, so a retry never loses it.
if redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return -1
end
if redis.call('LREM', KEYS[1], 0, ARGV[1]) == 0 then
  return 0
end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('DEL', KEYS[5])
redis.call('LPUSH', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[4])
notify(ARGV[5], '1')
return 1
