-- start: record that a leased job has started (status "processing", attempts + 1).
--
-- KEYS[1]  lease owners  bananas:lease:owners
-- KEYS[2]  job record    bananas:job:<id>
-- ARGV[1]  job id
-- ARGV[2]  lease token the caller holds
-- ARGV[3]  job record (JSON) to store
--
-- Returns 1, or 0 when the caller no longer holds the lease (nothing is written, so a
-- late writer can never flip a job's state back).
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[3])
return 1
