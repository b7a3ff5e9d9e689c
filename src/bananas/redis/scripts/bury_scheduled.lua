-- bury_scheduled: park a scheduled entry whose record is missing or unreadable in the
-- dead letters, keeping whatever data there was in a stand-in record.
--
-- KEYS[1]  scheduled set   bananas:queue:scheduled
-- KEYS[2]  job record      bananas:job:<id>
-- KEYS[3]  dead letters    bananas:queue:dead
-- ARGV[1]  job id
-- ARGV[2]  stand-in record (JSON, status "failed", the reason in "error")
-- ARGV[3]  record TTL in seconds (0 keeps it forever)
-- ARGV[4]  dead letter list cap (0 = unbounded)
--
-- Returns 1, or 0 when another promoter took the entry first (ZREM is the claim).
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ttl)
else
  redis.call('SET', KEYS[2], ARGV[2])
end
redis.call('LREM', KEYS[3], 0, ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[1])
local cap = tonumber(ARGV[4])
if cap > 0 then
  redis.call('LTRIM', KEYS[3], 0, cap - 1)
end
return 1
