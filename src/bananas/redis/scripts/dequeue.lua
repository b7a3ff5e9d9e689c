-- dequeue: take up to COUNT ready job ids in the worker's order and lease them.
--
-- KEYS[1]     leases          bananas:leases (zset: id -> lease deadline, Unix ms)
-- KEYS[2]     lease owners    bananas:lease:owners (hash: id -> lease token)
-- KEYS[3..]   ready queues in the order the worker prefers them
-- ARGV[1]     lease deadline, Unix milliseconds (now + lease length, from the caller's clock)
-- ARGV[2]     lease token for this delivery (worker id and a sequence number)
-- ARGV[3]     COUNT, the most ids to take (the worker's free slots)
--
-- Returns a flat array {queue_index, id, queue_index, id, ...} (queue_index is 1-based
-- into the queue KEYS, i.e. KEYS[queue_index + 2]); empty when every queue is empty.
-- The pop and the lease are one step: a job is never in no list and no lease.
local wanted = tonumber(ARGV[3])
local out = {}
for i = 3, #KEYS do
  local ids = redis.call('RPOP', KEYS[i], wanted)
  if ids then
    for _, id in ipairs(ids) do
      redis.call('ZADD', KEYS[1], ARGV[1], id)
      redis.call('HSET', KEYS[2], id, ARGV[2])
      out[#out + 1] = i - 2
      out[#out + 1] = id
    end
    wanted = wanted - #ids
    if wanted <= 0 then
      break
    end
  end
end
return out
