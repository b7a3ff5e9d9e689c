-- progress: store a running job's progress, if the caller still holds its lease.
--
-- KEYS[1]  lease owners  bananas:lease:owners
-- KEYS[2]  progress      bananas:progress:<id> (hash)
-- ARGV[1]  job id
-- ARGV[2]  lease token the caller holds
-- ARGV[3]  fraction done, 0 to 1
-- ARGV[4]  message ("" for none)
-- ARGV[5]  time of the report (RFC 3339)
-- ARGV[6]  TTL in seconds
-- ARGV[7]  progress channel  bananas:progress:notify:<id> (message: the fraction)
--
-- Returns 1, or 0 when the caller no longer holds the lease (nothing written: a run that
-- lost its job cannot overwrite the progress of the run that has it).
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[2], 'fraction', ARGV[3], 'message', ARGV[4], 'at', ARGV[5])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[6]))
notify(ARGV[7], ARGV[3])
return 1
