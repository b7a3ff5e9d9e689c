-- periodic_register: record a periodic schedule's definition; give it a cursor if new.
--
-- KEYS[1]  schedule state   bananas:schedule:<id> (hash)
-- KEYS[2]  schedule index   bananas:schedules (zset, member id, score = next run)
-- ARGV[1]  schedule id
-- ARGV[2]  initial cursor, Unix seconds (ticks at or before it never run)
-- ARGV[3]  first tick after the initial cursor, Unix seconds, or '' if none
-- ARGV[4]  now, Unix seconds
-- ARGV[5..] definition, as field/value pairs (cron, timezone, job, routing_key, ...)
--
-- Returns {1, cursor} when the schedule was new (cursor, next_run, created_at set), or
-- {0, cursor} when it already had a cursor: that cursor is kept, so a restarted or an
-- additional scheduler neither re-runs nor forgets a tick. The definition is always
-- overwritten (the latest scheduler to start describes the schedule).
if #ARGV > 4 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 5, #ARGV))
end
local cursor = redis.call('HGET', KEYS[1], 'cursor')
if cursor then
  return {0, cursor}
end
local score = ARGV[3]
if score == '' then
  score = '+inf'
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'cursor', ARGV[2], 'next_run', ARGV[3],
  'created_at', ARGV[4], 'updated_at', ARGV[4], 'run_count', 0)
redis.call('ZADD', KEYS[2], score, ARGV[1])
return {1, ARGV[2]}
