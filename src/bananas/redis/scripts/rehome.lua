-- rehome: put a job whose bookkeeping is inconsistent back in exactly one place (the
-- reconciler's repair), if nothing about the job changed since the reconciler looked.
--
-- KEYS[1]    leases          bananas:leases
-- KEYS[2]    lease owners    bananas:lease:owners
-- KEYS[3]    lease routes    bananas:lease:routes (id -> routing key, for limited keys)
-- KEYS[4]    in flight       bananas:limits:inflight (routing key -> jobs in flight)
-- KEYS[5]    job record      bananas:job:<id>
-- KEYS[6]    scheduled set   bananas:queue:scheduled
-- KEYS[7]    dead letters    bananas:queue:dead
-- KEYS[8]    home queue      the job's own ready queue (routing key and priority)
-- KEYS[9..]  other ready lists the id was seen in or may be in (every copy is removed);
--            for an orphan, last, also bananas:queue:processing, the original Go
--            workers' list: an id one of them took meanwhile is not an orphan
-- ARGV[1]    job id
-- ARGV[2]    SHA1 (hex) of the record the reconciler read; '' when it saw no record
-- ARGV[3]    lease token the reconciler saw in the owners hash; '' when it saw none
-- ARGV[4]    home: 'ready' | 'scheduled' | 'dead' | 'none' | 'leased'
-- ARGV[5]    job record (JSON) to store; '' leaves the record as it is
-- ARGV[6]    'scheduled': due time, Unix seconds; 'leased': lease deadline, Unix ms
-- ARGV[7]    wake-up channel: the routing key's ('ready') or the promoter's ('scheduled')
-- ARGV[8]    '1' for an orphan: do nothing if the id is leased, scheduled, dead or in
--            any of KEYS[8..] (it was not an orphan after all)
-- ARGV[9]    dead letter list cap with 'dead' (0 = unbounded): the oldest ids beyond it
--            are trimmed, as every script that pushes to the dead letters does
--
-- 'leased' keeps the lease and its owner (adding a lease entry with deadline ARGV[6] if
-- there is none, so the recoverer can take the job back if its holder is gone) and
-- removes every other copy. Every other home drops the lease and its owner (giving back
-- its fleet concurrency slot, like every script that ends a lease), removes the id from
-- the scheduled set, the dead letters and every list in KEYS[8..], then stores the
-- record and puts the id in its home exactly once ('none': nowhere, e.g. completed).
--
-- Returns 1, or 0 when the record or the lease owner differs from what the reconciler
-- saw (a worker, producer or another reconciler changed the job meanwhile: nothing is
-- written, the next pass looks again).
local id = ARGV[1]
local raw = redis.call('GET', KEYS[5])
if ARGV[2] == '' then
  if raw then
    return 0
  end
elseif (not raw) or redis.sha1hex(raw) ~= ARGV[2] then
  return 0
end
if (redis.call('HGET', KEYS[2], id) or '') ~= ARGV[3] then
  return 0
end
if ARGV[8] == '1' then
  if redis.call('ZSCORE', KEYS[1], id) or redis.call('ZSCORE', KEYS[6], id) then
    return 0
  end
  if redis.call('LPOS', KEYS[7], id) then
    return 0
  end
  for i = 8, #KEYS do
    if redis.call('LPOS', KEYS[i], id) then
      return 0
    end
  end
end
local home = ARGV[4]
if home ~= 'leased' then
  end_lease(id)
end
redis.call('ZREM', KEYS[6], id)
redis.call('LREM', KEYS[7], 0, id)
for i = 8, #KEYS do
  redis.call('LREM', KEYS[i], 0, id)
end
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[5], ARGV[5])
end
if home == 'ready' then
  redis.call('RPUSH', KEYS[8], id)
  notify(ARGV[7], '1')
elseif home == 'scheduled' then
  redis.call('ZADD', KEYS[6], ARGV[6], id)
  notify(ARGV[7], ARGV[6])
elseif home == 'dead' then
  redis.call('LPUSH', KEYS[7], id)
  local cap = tonumber(ARGV[9]) or 0
  if cap > 0 then
    redis.call('LTRIM', KEYS[7], 0, cap - 1)
  end
elseif home == 'leased' then
  redis.call('ZADD', KEYS[1], 'NX', ARGV[6], id)
end
return 1
