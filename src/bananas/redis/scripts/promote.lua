-- promote: move one due scheduled job to the ready queue of its own routing key.
--
-- KEYS[1]  scheduled set   bananas:queue:scheduled
-- KEYS[2]  ready queue     bananas:route:<job's routing_key>:queue:<job's priority>
-- KEYS[3]  job record      bananas:job:<id>
-- ARGV[1]  job id
-- ARGV[2]  job record (JSON, status "pending")
-- ARGV[3]  wake-up channel of the job's routing key
--
-- Returns 1, or 0 when another promoter got there first (ZREM is the claim), so any
-- number of workers may promote at once without queuing a job twice.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('SET', KEYS[3], ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[1])
notify(ARGV[3], '1')
return 1
