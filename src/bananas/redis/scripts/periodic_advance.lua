-- periodic_advance: move a periodic schedule's cursor without enqueuing a job.
--
-- KEYS[1]  schedule state   bananas:schedule:<id> (hash)
-- KEYS[2]  schedule index   bananas:schedules (zset, score = next run)
-- ARGV[1]  schedule id
-- ARGV[2]  expected cursor
-- ARGV[3]  new cursor, Unix seconds (equal to ARGV[2] to refresh next_run only)
-- ARGV[4]  next run after the new cursor, Unix seconds, or '' if none
-- ARGV[5]  now, Unix seconds
-- ARGV[6..] extra field/value pairs to record (last_missed_*, last_error...)
--
-- Used to skip missed ticks and to refresh next_run after a definition change. A
-- compare-and-set like periodic_fire: returns {1, new cursor}, or {0, cursor} ('' when
-- the state is gone) without writing anything if the cursor is no longer ARGV[2].
local cursor = redis.call('HGET', KEYS[1], 'cursor')
if cursor ~= ARGV[2] then
  return {0, cursor or ''}
end
local score = ARGV[4]
if score == '' then
  score = '+inf'
end
redis.call('HSET', KEYS[1], 'cursor', ARGV[3], 'next_run', ARGV[4], 'updated_at', ARGV[5])
if #ARGV > 5 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 6, #ARGV))
end
redis.call('ZADD', KEYS[2], score, ARGV[1])
return {1, ARGV[3]}
