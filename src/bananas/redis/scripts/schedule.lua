-- schedule: store a new job record due at a later time, atomically.
--
-- KEYS[1]  job record            bananas:job:<id>
-- KEYS[2]  scheduled set         bananas:queue:scheduled (score = due, Unix seconds)
-- KEYS[3]  routing-key registry  bananas:routing_keys
-- ARGV[1]  job id
-- ARGV[2]  job record (JSON, status "scheduled", with scheduled_for)
-- ARGV[3]  due time, Unix seconds
-- ARGV[4]  routing key
-- ARGV[5]  promoter wake-up channel  bananas:queue:scheduled:notify
--
-- Returns 1, or 0 when a record with this id already exists (nothing is written).
if not redis.call('SET', KEYS[1], ARGV[2], 'NX') then
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[4])
notify(ARGV[5], ARGV[3])
return 1
