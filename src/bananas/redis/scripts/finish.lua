-- finish: a leased job with hand-offs (a workflow step, a unique key) ended; store its
-- final record and result, drop the lease and do its hand-offs, all in one atomic step.
-- Jobs without hand-offs end with ack.lua / bury.lua, which this mirrors.
--
-- KEYS[1]  leases        bananas:leases
-- KEYS[2]  lease owners  bananas:lease:owners
-- KEYS[3]  lease routes  bananas:lease:routes
-- KEYS[4]  in flight     bananas:limits:inflight
-- KEYS[5]  job record    bananas:job:<id>
-- KEYS[6]  result        bananas:result:<id> (hash)
-- KEYS[7]  dead letters  bananas:queue:dead
-- then, if ARGV[9] is 1:  the unique lock bananas:unique:<unique_key>
-- then, if ARGV[10] is 1 (a workflow step):
--          the workflow           bananas:workflow:<workflow_id> (hash)
--          its outcome            bananas:result:<workflow_id> (hash)
--          routing-key registry   bananas:routing_keys
--          per step of the next stage: its job record, its ready queue
-- ARGV[1]  job id
-- ARGV[2]  lease token the caller holds
-- ARGV[3]  final job record (JSON)
-- ARGV[4]  record TTL in seconds (0 keeps it forever)
-- ARGV[5]  final status: completed, failed, cancelled or expired
-- ARGV[6]  dead letter cap (0 = unbounded), or -1 when the job is no dead letter
-- ARGV[7]  result TTL in seconds (0 stores no result)
-- ARGV[8]  result channel  bananas:result:notify:<id> (message 'ready', as every result)
-- ARGV[9]  1: delete the unique lock if it still holds this job id
-- ARGV[10] 1: the job is step ARGV[12] of stage ARGV[11] of a workflow
-- ARGV[11] stage number
-- ARGV[12] index of the step in its stage
-- ARGV[13] number of steps in the stage
-- ARGV[14] 1 when the stage is a group (the next stage gets the list of its results)
-- ARGV[15] 1 when a member that fails for good or expires counts as ended (result null)
-- ARGV[16] the step's result as JSON ("null" unless completed)
-- ARGV[17] the step's error (failed, cancelled, expired)
-- ARGV[18] seconds the workflow's state and outcome are kept after it ended
-- ARGV[19] the workflow's result channel  bananas:result:notify:<workflow_id>
-- ARGV[20] now (RFC 3339)
-- ARGV[21] number n of steps in the next stage (0: this is the last stage)
-- ARGV[22..21+3n] per next step: id, routing key, wake-up channel
-- ARGV[22+3n]     number of result hash fields and values, then those fields and values
--
-- Returns 1, or 0 when the caller no longer holds the lease (nothing is written).
--
-- Hand-off rules: a step's end is recorded once per stage member (HSETNX
-- done:<stage>:<index>), so a step run again after a crash never counts twice; the
-- member whose end completes the stage queues every step of the next stage (SET NX of
-- its pre-built record, with "parent_result" added), or, for the last stage, stores the
-- workflow's outcome. A step that fails for good (unless allowed) fails the workflow.
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
end_lease(ARGV[1])
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('SET', KEYS[5], ARGV[3], 'EX', ttl)
else
  redis.call('SET', KEYS[5], ARGV[3])
end
local status = ARGV[5]
local cap = tonumber(ARGV[6])
if cap >= 0 then
  redis.call('LREM', KEYS[7], 0, ARGV[1])
  redis.call('LPUSH', KEYS[7], ARGV[1])
  if cap > 0 then
    redis.call('LTRIM', KEYS[7], 0, cap - 1)
  end
end
local n_next = tonumber(ARGV[21])
local fields_at = 22 + 3 * n_next
local result_ttl = tonumber(ARGV[7])
if result_ttl > 0 and tonumber(ARGV[fields_at]) > 0 then
  redis.call('DEL', KEYS[6])
  redis.call('HSET', KEYS[6], unpack(ARGV, fields_at + 1, fields_at + tonumber(ARGV[fields_at])))
  redis.call('EXPIRE', KEYS[6], result_ttl)
  notify(ARGV[8], 'ready')
end
local k = 8
if ARGV[9] == '1' then
  if redis.call('GET', KEYS[k]) == ARGV[1] then
    redis.call('DEL', KEYS[k])
  end
  k = k + 1
end
if ARGV[10] ~= '1' then
  return 1
end
local flow, outcome, registry = KEYS[k], KEYS[k + 1], KEYS[k + 2]
if redis.call('EXISTS', flow) == 0 then
  return 1 -- the workflow expired or was deleted: nothing to hand on to
end
local kept = tonumber(ARGV[18])
local stage, index, size = ARGV[11], ARGV[12], tonumber(ARGV[13])
-- An operator's cancel stops the workflow even where failures are allowed.
local ok = status == 'completed' or (ARGV[15] == '1' and status ~= 'cancelled')
if not ok then
  if redis.call('HGET', flow, 'state') == 'running' then
    local reason = 'step ' .. ARGV[1] .. ' ' .. status .. ': ' .. ARGV[17]
    redis.call('HSET', flow, 'state', 'failed', 'failed_step', ARGV[1], 'finished_at', ARGV[20])
    redis.call('DEL', outcome)
    redis.call('HSET', outcome, 'status', 'failed', 'name', 'workflow', 'error', reason, 'finished_at', ARGV[20])
    redis.call('EXPIRE', outcome, kept)
    redis.call('EXPIRE', flow, kept)
    notify(ARGV[19], 'failed')
  end
  return 1
end
local value = ARGV[16]
if status ~= 'completed' then
  value = 'null'
end
if redis.call('HSETNX', flow, 'done:' .. stage .. ':' .. index, value) == 0 then
  return 1 -- this member's end was already counted (a run again after a crash)
end
if redis.call('HINCRBY', flow, 'count:' .. stage, 1) ~= size then
  return 1
end
local parent = value
if ARGV[14] == '1' then
  local names = {}
  for i = 0, size - 1 do
    names[#names + 1] = 'done:' .. stage .. ':' .. i
  end
  local values = redis.call('HMGET', flow, unpack(names))
  for i = 1, #values do
    if not values[i] then
      values[i] = 'null'
    end
  end
  parent = '[' .. table.concat(values, ',') .. ']'
end
if redis.call('HGET', flow, 'state') ~= 'running' then
  return 1 -- failed meanwhile: nothing more runs
end
if n_next == 0 then
  redis.call('HSET', flow, 'state', 'completed', 'finished_at', ARGV[20])
  redis.call('DEL', outcome)
  redis.call('HSET', outcome, 'status', 'completed', 'name', 'workflow', 'result', parent, 'finished_at', ARGV[20])
  redis.call('EXPIRE', outcome, kept)
  redis.call('EXPIRE', flow, kept)
  notify(ARGV[19], 'completed')
  return 1
end
local a = 22
local q = k + 3
for _ = 1, n_next do
  local id = ARGV[a]
  local record = redis.call('HGET', flow, 'record:' .. id)
  if record then
    -- The pre-built record is a JSON object: add the field before its closing brace.
    record = string.sub(record, 1, -2) .. ',"parent_result":' .. parent .. '}'
    if redis.call('SET', KEYS[q], record, 'NX') then
      redis.call('LPUSH', KEYS[q + 1], id)
      redis.call('SADD', registry, ARGV[a + 1])
      notify(ARGV[a + 2], '1')
    end
    redis.call('HDEL', flow, 'record:' .. id)
  end
  a = a + 3
  q = q + 2
end
return 1
