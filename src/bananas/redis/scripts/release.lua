-- release: give a leased job back to its ready queue untouched (graceful shutdown).
--
-- KEYS[1]  leases        bananas:leases
-- KEYS[2]  lease owners  bananas:lease:owners
-- KEYS[3]  lease routes  bananas:lease:routes (id -> routing key, for limited keys)
-- KEYS[4]  in flight     bananas:limits:inflight (routing key -> jobs in flight)
-- KEYS[5]  job record    bananas:job:<id>
-- KEYS[6]  ready queue   the job's own routing key and priority
-- ARGV[1]  job id
-- ARGV[2]  lease token the caller holds
-- ARGV[3]  job record (JSON, status "pending")
-- ARGV[4]  wake-up channel of the job's routing key
--
-- Returns 1, or 0 when the caller no longer holds the lease (nothing written).
-- The id goes back on the right, the consumers' end: it is the next one taken.
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
end_lease(ARGV[1])
redis.call('SET', KEYS[5], ARGV[3])
redis.call('RPUSH', KEYS[6], ARGV[1])
notify(ARGV[4], '1')
return 1
