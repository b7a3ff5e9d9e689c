-- periodic_fire: claim one tick of a periodic schedule and enqueue its job, atomically.
--
-- KEYS[1]  schedule state        bananas:schedule:<id> (hash)
-- KEYS[2]  schedule index        bananas:schedules (zset, score = next run)
-- KEYS[3]  job record            bananas:job:<job id>
-- KEYS[4]  ready queue           bananas:route:<routing_key>:queue:<priority>
-- KEYS[5]  routing-key registry  bananas:routing_keys (set)
-- ARGV[1]  schedule id
-- ARGV[2]  expected cursor: the cursor the caller computed this tick from
-- ARGV[3]  tick, Unix seconds (becomes the cursor)
-- ARGV[4]  job id (derived from schedule id and tick)
-- ARGV[5]  job record (JSON, status "pending"), as the submit script stores it
-- ARGV[6]  routing key
-- ARGV[7]  wake-up channel       bananas:route:<routing_key>:notify
-- ARGV[8]  next run after the tick, Unix seconds, or '' if none
-- ARGV[9]  now, Unix seconds
-- ARGV[10] '1' if this run collapses missed ticks (catch-up), else '0'
-- ARGV[11] first missed tick (catch-up only, else '')
--
-- The claim is a compare-and-set on the cursor: if it is no longer ARGV[2], another
-- scheduler already decided this tick and nothing is written; returns {0, cursor}
-- ('' when the schedule's state is gone). Claim and enqueue happen in this one script,
-- so no crash can separate them. Otherwise returns {1, tick}, or {2, tick} when a job
-- with this id already exists (the tick was enqueued before: the cursor moves on, no
-- second job is queued). The job is queued exactly like the submit script does.
local cursor = redis.call('HGET', KEYS[1], 'cursor')
if cursor ~= ARGV[2] then
  return {0, cursor or ''}
end
local score = ARGV[8]
if score == '' then
  score = '+inf'
end
local result = 2
if redis.call('EXISTS', KEYS[3]) == 0 then
  -- The ready queue is written first: if it is not a list (WRONGTYPE) the script
  -- fails before writing anything, and the tick stays due.
  redis.call('LPUSH', KEYS[4], ARGV[4])
  redis.call('SET', KEYS[3], ARGV[5])
  redis.call('SADD', KEYS[5], ARGV[6])
  redis.call('HSET', KEYS[1], 'last_run', ARGV[3], 'last_run_at', ARGV[9], 'last_job_id', ARGV[4])
  redis.call('HINCRBY', KEYS[1], 'run_count', 1)
  result = 1
end
redis.call('HSET', KEYS[1], 'cursor', ARGV[3], 'next_run', ARGV[8], 'updated_at', ARGV[9])
redis.call('ZADD', KEYS[2], score, ARGV[1])
if ARGV[10] == '1' then
  redis.call('HSET', KEYS[1], 'last_missed_from', ARGV[11], 'last_missed_to', ARGV[3],
    'last_missed_policy', 'once', 'last_missed_at', ARGV[9])
end
if result == 1 then
  notify(ARGV[7], '1')
end
return {result, ARGV[3]}
