-- recover: take back a job whose lease expired (its worker died or hung).
--
-- KEYS[1]  leases        bananas:leases
-- KEYS[2]  lease owners  bananas:lease:owners
-- KEYS[3]  lease routes  bananas:lease:routes (id -> routing key, for limited keys)
-- KEYS[4]  in flight     bananas:limits:inflight (routing key -> jobs in flight)
-- KEYS[5]  job record    bananas:job:<id>
-- KEYS[6]  destination   the job's ready queue, or the dead letter list
-- KEYS[7]  result        bananas:result:<id> (hash; written with 'dead' only)
-- KEYS[8]  held list     bananas:queue:processing, where original Go workers keep the
--          jobs they run: with 'ready', an id found there is not queued again (the
--          lease is dropped, the original worker runs the job)
-- ARGV[1]  job id
-- ARGV[2]  lease token the caller saw ('' when the lease had no owner)
-- ARGV[3]  now, Unix milliseconds, from the caller's clock; the script uses the earlier
--          of it and the server's TIME, so a caller whose clock runs ahead (or a request
--          that waited in a stalled server) can never take back a lease early
-- ARGV[4]  job record (JSON) to store; '' leaves the record as it is
-- ARGV[5]  'ready' (back to the queue, next in line) or 'dead'
-- ARGV[6]  wake-up channel of the job's routing key (used with 'ready')
-- ARGV[7]  result TTL in seconds (with 'dead'; 0 stores no result)
-- ARGV[8]  result channel        bananas:result:notify:<id> (message 'ready')
-- ARGV[9]  record TTL in seconds with 'dead' (0 keeps it forever)
-- ARGV[10] dead letter list cap with 'dead' (0 = unbounded)
-- ARGV[11..]  result hash fields and values (with 'dead')
--
-- Returns 1, 2 when the lease was dropped but the id is held by an original worker (not
-- queued again), or 0 when the lease is no longer expired or changed hands since the
-- caller looked (a heartbeat extended it, or another recoverer was first).
local clock = redis.call('TIME')
local now = math.min(tonumber(ARGV[3]), tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000))
local deadline = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not deadline or tonumber(deadline) > now then
  return 0
end
if (redis.call('HGET', KEYS[2], ARGV[1]) or '') ~= ARGV[2] then
  return 0
end
end_lease(ARGV[1])
if ARGV[5] == 'ready' and redis.call('LPOS', KEYS[8], ARGV[1]) then
  return 2
end
if ARGV[4] ~= '' then
  local record_ttl = tonumber(ARGV[9])
  if ARGV[5] == 'dead' and record_ttl > 0 then
    redis.call('SET', KEYS[5], ARGV[4], 'EX', record_ttl)
  else
    redis.call('SET', KEYS[5], ARGV[4])
  end
end
if ARGV[5] == 'ready' then
  redis.call('RPUSH', KEYS[6], ARGV[1])
  notify(ARGV[6], '1')
else
  redis.call('LREM', KEYS[6], 0, ARGV[1])
  redis.call('LPUSH', KEYS[6], ARGV[1])
  local cap = tonumber(ARGV[10])
  if cap > 0 then
    redis.call('LTRIM', KEYS[6], 0, cap - 1)
  end
  local result_ttl = tonumber(ARGV[7])
  if result_ttl > 0 and #ARGV >= 11 then
    redis.call('DEL', KEYS[7])
    redis.call('HSET', KEYS[7], unpack(ARGV, 11))
    redis.call('EXPIRE', KEYS[7], result_ttl)
    notify(ARGV[8], 'ready')
  end
end
return 1
