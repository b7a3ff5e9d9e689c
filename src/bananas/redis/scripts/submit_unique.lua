-- submit_unique: queue a new job unless another job holds its unique key, atomically.
--
-- KEYS[1]  job record            bananas:job:<id>
-- KEYS[2]  ready queue           bananas:route:<routing_key>:queue:<priority>
-- KEYS[3]  routing-key registry  bananas:routing_keys (set)
-- KEYS[4]  unique lock           bananas:unique:<unique_key>
-- ARGV[1]  job id
-- ARGV[2]  job record (JSON, status "pending", with "unique_key")
-- ARGV[3]  routing key
-- ARGV[4]  wake-up channel       bananas:route:<routing_key>:notify
-- ARGV[5]  seconds the lock lasts at most (unique_for)
--
-- Returns the id of the job holding the key: ARGV[1] when this job was queued (or was
-- already, by a retried submit), else the first job's id, and nothing is written. The
-- script that ends the job deletes the lock if it still holds this id (finish.lua).
if not redis.call('SET', KEYS[4], ARGV[1], 'NX', 'EX', tonumber(ARGV[5])) then
  return redis.call('GET', KEYS[4])
end
if redis.call('SET', KEYS[1], ARGV[2], 'NX') then
  redis.call('LPUSH', KEYS[2], ARGV[1])
  redis.call('SADD', KEYS[3], ARGV[3])
  notify(ARGV[4], '1')
end
return ARGV[1]
