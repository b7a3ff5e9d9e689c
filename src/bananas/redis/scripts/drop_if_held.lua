-- drop_if_held: end a delivery of a job that an ORIGINAL Go worker is running, without
-- running it; otherwise change nothing.
--
-- Original Go workers keep the jobs they run in bananas:queue:processing (no lease). An
-- id can be there and in a ready list at once when the original Go scheduler pushed it a
-- second time (it promotes without a claim). A worker of ours that took that second copy
-- must not run it next to the Go worker.
--
-- KEYS[1]  leases        bananas:leases
-- KEYS[2]  lease owners  bananas:lease:owners
-- KEYS[3]  lease routes  bananas:lease:routes (id -> routing key, for limited keys)
-- KEYS[4]  in flight     bananas:limits:inflight (routing key -> jobs in flight)
-- KEYS[5]  held list     bananas:queue:processing
-- ARGV[1]  job id
-- ARGV[2]  lease token the caller holds
--
-- Returns 1 when the id is held by an original worker and the caller's lease was dropped
-- (the record is left as it is); 0 when it is not held, or the caller no longer holds
-- the lease (nothing changed either way).
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
if not redis.call('LPOS', KEYS[5], ARGV[1]) then
  return 0
end
end_lease(ARGV[1])
return 1
