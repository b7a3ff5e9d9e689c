-- submit_many: store N new job records for one routing key and priority, atomically.
--
-- KEYS[1..N]  job records        bananas:job:<id>, in the same order as the ids
-- KEYS[N+1]   ready queue        bananas:route:<routing_key>:queue:<priority>
-- KEYS[N+2]   routing-key registry
-- ARGV[1]     routing key
-- ARGV[2]     wake-up channel
-- ARGV[3..]   id_1, record_1, id_2, record_2, ... (N pairs)
--
-- Returns N, or 0 when the first job's record already exists (the batch was applied
-- before: a retry after a lost reply writes nothing). The client validates every record
-- before sending and the commands here cannot fail on valid input, so a batch is
-- all-or-nothing; no other client sees it half-written, as scripts run atomically.
local n = #KEYS - 2
local queue = KEYS[n + 1]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
-- One MSET and one LPUSH per chunk of 500 jobs rather than a SET per job (a call from
-- Lua costs more than the write); chunks because Lua's unpack has a limit on arguments.
local ids, pairs = {}, {}
for i = 1, n do
  ids[#ids + 1] = ARGV[1 + 2 * i]
  pairs[#pairs + 1] = KEYS[i]
  pairs[#pairs + 1] = ARGV[2 + 2 * i]
  if #ids == 500 then
    redis.call('MSET', unpack(pairs))
    redis.call('LPUSH', queue, unpack(ids))
    ids, pairs = {}, {}
  end
end
if #ids > 0 then
  redis.call('MSET', unpack(pairs))
  redis.call('LPUSH', queue, unpack(ids))
end
redis.call('SADD', KEYS[n + 2], ARGV[1])
notify(ARGV[2], '1')
return n
