-- retry: a leased job failed and will run again later on its own routing key.
--
-- KEYS[1]  leases          bananas:leases
-- KEYS[2]  lease owners    bananas:lease:owners
-- KEYS[3]  lease routes  bananas:lease:routes (id -> routing key, for limited keys)
-- KEYS[4]  in flight     bananas:limits:inflight (routing key -> jobs in flight)
-- KEYS[5]  job record      bananas:job:<id>
-- KEYS[6]  scheduled set   bananas:queue:scheduled
-- ARGV[1]  job id
-- ARGV[2]  lease token the caller holds
-- ARGV[3]  job record (JSON, status "scheduled", scheduled_for, error)
-- ARGV[4]  due time, Unix seconds
-- ARGV[5]  promoter wake-up channel
--
-- Returns 1, or 0 when the caller no longer holds the lease (nothing written).
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
end_lease(ARGV[1])
redis.call('SET', KEYS[5], ARGV[3])
redis.call('ZADD', KEYS[6], ARGV[4], ARGV[1])
notify(ARGV[5], ARGV[4])
return 1
