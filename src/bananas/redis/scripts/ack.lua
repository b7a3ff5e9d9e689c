-- ack: a leased job finished; store its final record and drop the lease.
--
-- KEYS[1]  leases        bananas:leases
-- KEYS[2]  lease owners  bananas:lease:owners
-- KEYS[3]  job record    bananas:job:{id}
-- ARGV[1]  job id
-- ARGV[2]  lease token the caller holds
-- ARGV[3]  job record (JSON, status "completed")
-- ARGV[4]  record TTL in seconds (0 keeps it forever)
--
-- Returns 1, or 0 for a late acknowledgement (the lease expired and the job was
-- recovered): nothing is written and the newer delivery stays in charge.
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('SET', KEYS[3], ARGV[3], 'EX', ttl)
else
  redis.call('SET', KEYS[3], ARGV[3])
end
return 1
