-- park: hand a leased job, untouched, to the workers that can run it now.
--
-- Used when the worker that took the job has no handler for its name (or is limited to
-- other job names), or when the job's name is rate limited. The job moves to the list
-- of its name within its routing key and priority; workers that run that name take
-- from that list before the main one, so it keeps its place in line and no retry is
-- spent. It moves once: it is never popped and pushed back in a loop.
--
-- KEYS[1]  leases        bananas:leases
-- KEYS[2]  lease owners  bananas:lease:owners
-- KEYS[3]  lease routes  bananas:lease:routes
-- KEYS[4]  in flight     bananas:limits:inflight
-- KEYS[5]  job record    bananas:job:<id>
-- KEYS[6]  parked list   bananas:route:<routing_key>:queue:<priority>:job:<name>
-- KEYS[7]  parked index  bananas:route:<routing_key>:parked (set)
-- ARGV[1]  job id
-- ARGV[2]  lease token the caller holds
-- ARGV[3]  job record (JSON, status "pending", with the reason in "parked")
-- ARGV[4]  index member  "<priority>:<name>"
-- ARGV[5]  wake-up channel of the job's routing key
--
-- Returns 1, or 0 when the caller no longer holds the lease (nothing written).
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
end_lease(ARGV[1])
redis.call('SET', KEYS[5], ARGV[3])
redis.call('LPUSH', KEYS[6], ARGV[1])
redis.call('SADD', KEYS[7], ARGV[4])
notify(ARGV[5], 'parked')
return 1
