-- drop: end a delivery that must not run, leaving the job's record as it is (the id was
-- found in a ready list although its record is already final: a duplicate entry).
--
-- KEYS[1]  leases        bananas:leases
-- KEYS[2]  lease owners  bananas:lease:owners
-- KEYS[3]  lease routes  bananas:lease:routes (id -> routing key, for limited keys)
-- KEYS[4]  in flight     bananas:limits:inflight (routing key -> jobs in flight)
-- ARGV[1]  job id
-- ARGV[2]  lease token the caller holds
--
-- Returns 1, or 0 when the caller no longer holds the lease (nothing changed).
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
end_lease(ARGV[1])
return 1
