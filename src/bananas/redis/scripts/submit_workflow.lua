-- submit_workflow: store a new workflow and queue the steps of its first stage, atomically.
--
-- KEYS[1]  workflow              bananas:workflow:<workflow_id> (hash)
-- KEYS[2]  routing-key registry  bananas:routing_keys (set)
-- KEYS[3..] per step of the first stage: its job record bananas:job:<id>, then its
--           ready queue bananas:route:<routing_key>:queue:<priority>
-- ARGV[1]  workflow TTL in seconds while it runs
-- ARGV[2]  spec (JSON: the stages and every step's id, name, routing key)
-- ARGV[3]  number m of waiting steps (later stages)
-- ARGV[4..3+2m]  per waiting step: its id, its pre-built record (JSON, status "pending")
-- then per step of the first stage: id, record, routing key, wake-up channel
--           bananas:route:<routing_key>:notify
--
-- Returns 1, or 0 when a workflow with this id exists (nothing is written): a submit
-- retried after a lost reply never queues a step twice.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'spec', ARGV[2], 'state', 'running')
local waiting = tonumber(ARGV[3])
local a = 4
for _ = 1, waiting do
  redis.call('HSET', KEYS[1], 'record:' .. ARGV[a], ARGV[a + 1])
  a = a + 2
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
local k = 3
while a <= #ARGV do
  if redis.call('SET', KEYS[k], ARGV[a + 1], 'NX') then
    redis.call('LPUSH', KEYS[k + 1], ARGV[a])
    redis.call('SADD', KEYS[2], ARGV[a + 2])
    notify(ARGV[a + 3], '1')
  end
  a = a + 4
  k = k + 2
end
return 1
