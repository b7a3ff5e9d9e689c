-- submit: store a new job record and make it ready on its routing key, atomically.
--
-- KEYS[1]  job record            bananas:job:<id>
-- KEYS[2]  ready queue           bananas:route:<routing_key>:queue:<priority>
-- KEYS[3]  routing-key registry  bananas:routing_keys (set)
-- ARGV[1]  job id
-- ARGV[2]  job record (JSON, status "pending")
-- ARGV[3]  routing key
-- ARGV[4]  wake-up channel       bananas:route:<routing_key>:notify
--
-- Returns 1, or 0 when a record with this id already exists (nothing is written): a
-- submit retried after a lost reply never queues the job twice.
-- The id goes on the left; workers take from the right, so lists are FIFO.
if not redis.call('SET', KEYS[1], ARGV[2], 'NX') then
  return 0
end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[3])
notify(ARGV[4], '1')
return 1
