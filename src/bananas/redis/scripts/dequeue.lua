#!lua
-- dequeue: take up to COUNT ready job ids in the worker's order and lease them,
-- within the worker's and the fleet's limits.
--
-- KEYS[1]               leases        bananas:leases (zset: id -> lease deadline, Unix ms)
-- KEYS[2]               lease owners  bananas:lease:owners (hash: id -> lease token)
-- KEYS[3]               lease routes  bananas:lease:routes (hash: id -> routing key)
-- KEYS[4]               in flight     bananas:limits:inflight (hash: routing key -> count)
-- KEYS[5 .. 4+Q]        the Q ready lists, in the order the worker prefers them
-- KEYS[5+Q .. 4+Q+G]    rate state of each of the G routing-key groups (GCRA, ms)
-- KEYS[5+Q+G .. +T]     rate state of each of the T job-name gates
-- KEYS[#KEYS]           paused        bananas:paused (hash: <routing key> or
--                       <routing key>:<priority> -> when paused); always the last key
-- ARGV[1]  lease length, ms
-- ARGV[2]  lease token for this delivery
-- ARGV[3]  COUNT, the most ids to take (the worker's free slots)
-- ARGV[4]  Q     ARGV[5]  G     ARGV[6]  T
-- then per group, 6 values: routing key; local cap (-1 none; how many more this worker
--   may start); fleet concurrency limit (0 none); rate interval ms (0 none); rate
--   burst tolerance ms; the key prefix of its jobs' records (the record of id X is
--   <prefix>X, e.g. bananas:job:X; in the cluster layout it shares the slot of the
--   routing key's lists)
-- then per gate, 2 values: rate interval ms, burst tolerance ms
-- then per list, 3 values: its group (1..G), its gate (0 none), its priority
-- then optionally one group per slot (weighted selection): slot s tries that group's
--   lists first, then every list in order. Without them the lists are walked in order.
--
-- Returns {wait_ms, list_index, id, record, list_index, id, record, ...}: list_index is
-- 1-based into the Q lists; record is the leased job's record (nil if it has none), read
-- in this same call so that a pick-up takes one round trip; wait_ms > 0 says a rate
-- limit held back a non-empty list and when it opens again (0 otherwise). A negative
-- list_index (-q) reports an id popped from list q and dropped, not leased (its record
-- is nil, not read): it already has a lease owner (a duplicate entry of a job another
-- delivery holds; that delivery finishes it). A lease is never overwritten.
-- The pop and the lease are one step: a job is never in no list and no lease. A job
-- counted against a fleet limit is recorded in lease routes so that whatever ends its
-- lease gives the slot back. Nothing is taken from a list
-- whose routing key, or routing key and priority, is paused (``bananas pause``).
--
-- The bare flags line makes a Redis 7+ server refuse the whole call while it is out of
-- memory (maxmemory under noeviction), before anything is popped: a worker takes no new
-- job it could not record (see docs/RELIABILITY.md, "Redis out of memory").
--
-- Time: this script reads the server's TIME (it takes no "now"). A lease starts when
-- the server grants it, so a request that waited in a stalled server or a slow network
-- never arrives with a deadline already behind it, and the rate limits (GCRA) run on
-- one clock for the whole fleet whatever the callers' clocks say.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local deadline, token = now + tonumber(ARGV[1]), ARGV[2]
local wanted = tonumber(ARGV[3])
local Q, G, T = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local a = 7
local route, cap, fleet, interval, tolerance, record_prefix = {}, {}, {}, {}, {}, {}
for g = 1, G do
  route[g] = ARGV[a]
  cap[g] = tonumber(ARGV[a + 1])
  fleet[g] = tonumber(ARGV[a + 2])
  interval[g] = tonumber(ARGV[a + 3])
  tolerance[g] = tonumber(ARGV[a + 4])
  record_prefix[g] = ARGV[a + 5]
  a = a + 6
end
local gate_interval, gate_tolerance = {}, {}
for t = 1, T do
  gate_interval[t] = tonumber(ARGV[a])
  gate_tolerance[t] = tonumber(ARGV[a + 1])
  a = a + 2
end
local group_of, gate_of, prio_of = {}, {}, {}
for q = 1, Q do
  group_of[q] = tonumber(ARGV[a])
  gate_of[q] = tonumber(ARGV[a + 1])
  prio_of[q] = ARGV[a + 2]
  a = a + 3
end
local prefs = {}
for i = a, #ARGV do
  prefs[#prefs + 1] = tonumber(ARGV[i])
end

-- Paused lists (an empty hash, the usual case, costs one EXISTS).
local paused = {}
if redis.call('EXISTS', KEYS[#KEYS]) == 1 then
  local flat = redis.call('HGETALL', KEYS[#KEYS])
  local set = {}
  for i = 1, #flat, 2 do
    set[flat[i]] = true
  end
  for q = 1, Q do
    local key = route[group_of[q]]
    paused[q] = set[key] or set[key .. ':' .. prio_of[q]] or false
  end
end

local out = {0}
local wait_ms = 0
local inflight = {}

local function note_wait(ms)
  if wait_ms == 0 or ms < wait_ms then
    wait_ms = ms
  end
end

-- GCRA: the state is the theoretical arrival time; admit when it is within tolerance.
local function admit(key, tol)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then
    tat = now
  end
  if tat - now > tol then
    return false, tat - now - tol
  end
  return true, tat
end

local function commit(key, tat, step)
  redis.call('SET', key, tat + step, 'PX', math.floor(tat + step - now + step + 1000))
end

-- Try to take one id from list q; returns it or nil.
local function take(q)
  local g, t = group_of[q], gate_of[q]
  if cap[g] == 0 or paused[q] then
    return nil
  end
  if fleet[g] > 0 then
    if inflight[g] == nil then
      inflight[g] = tonumber(redis.call('HGET', KEYS[4], route[g]) or '0')
    end
    if inflight[g] >= fleet[g] then
      return nil
    end
  end
  local list = KEYS[4 + q]
  local route_ok, route_tat, gate_ok, gate_tat = true, nil, true, nil
  if interval[g] > 0 or t > 0 then
    if redis.call('LLEN', list) == 0 then
      return nil
    end
    if interval[g] > 0 then
      route_ok, route_tat = admit(KEYS[4 + Q + g], tolerance[g])
      if not route_ok then
        note_wait(route_tat)
        return nil
      end
    end
    if t > 0 then
      gate_ok, gate_tat = admit(KEYS[4 + Q + G + t], gate_tolerance[t])
      if not gate_ok then
        note_wait(gate_tat)
        return nil
      end
    end
  end
  local id = redis.call('RPOP', list)
  if not id then
    return nil
  end
  if redis.call('HEXISTS', KEYS[2], id) == 1 then
    -- Already leased: drop this copy. It took no slot and no rate token; go on looking.
    out[#out + 1] = -q
    out[#out + 1] = id
    out[#out + 1] = false
    return id
  end
  if route_tat then
    commit(KEYS[4 + Q + g], route_tat, interval[g])
  end
  if gate_tat then
    commit(KEYS[4 + Q + G + t], gate_tat, gate_interval[t])
  end
  redis.call('ZADD', KEYS[1], deadline, id)
  redis.call('HSET', KEYS[2], id, token)
  if fleet[g] > 0 then
    redis.call('HSET', KEYS[3], id, route[g])
    redis.call('HINCRBY', KEYS[4], route[g], 1)
    inflight[g] = inflight[g] + 1
  end
  if cap[g] > 0 then
    cap[g] = cap[g] - 1
  end
  out[#out + 1] = q
  out[#out + 1] = id
  out[#out + 1] = redis.call('GET', record_prefix[g] .. id)
  wanted = wanted - 1
  return id
end

-- A list with no limits at all is popped in one command (the common, fast case).
local function unlimited(q)
  local g = group_of[q]
  return cap[g] < 0 and fleet[g] == 0 and interval[g] == 0 and gate_of[q] == 0 and not paused[q]
end

local function lease_all(q, ids)
  local prefix = record_prefix[group_of[q]]
  for _, id in ipairs(ids) do
    if redis.call('HSETNX', KEYS[2], id, token) == 1 then
      redis.call('ZADD', KEYS[1], deadline, id)
      out[#out + 1] = q
      out[#out + 1] = id
      out[#out + 1] = redis.call('GET', prefix .. id)
      wanted = wanted - 1
    else
      out[#out + 1] = -q  -- already leased (maybe by this very call): dropped
      out[#out + 1] = id
      out[#out + 1] = false
    end
  end
end

-- LMPOP (Redis 7+, Valkey) finds the first non-empty list of a run in one command, so
-- a worker on many routing keys does not pay a call per empty list. Older servers get
-- the same result one RPOP at a time.
-- A run is looked at in chunks of LMPOP_CHUNK lists: Lua's unpack cannot spread more
-- than a few thousand values (a worker may listen on 10,000 routing keys, 30,000 lists).
local has_lmpop = true
local LMPOP_CHUNK = 1000

local function pop_run(first, last)
  local q = first
  while q <= last and wanted > 0 do
    local reply = nil
    if has_lmpop then
      local upto = math.min(last, q + LMPOP_CHUNK - 1)
      -- The keys go in a table: unpack() spreads all its values only as the last
      -- argument of a call (in the middle it gives one), which sent 'RIGHT' as a key.
      local args = {upto - q + 1, unpack(KEYS, 4 + q, 4 + upto)}
      args[#args + 1] = 'RIGHT'
      args[#args + 1] = 'COUNT'
      args[#args + 1] = wanted
      local ok, result = pcall(redis.call, 'LMPOP', unpack(args))
      if ok then
        reply = result
        if not reply then
          q = upto + 1
        else
          local key = reply[1]
          while KEYS[4 + q] ~= key do
            q = q + 1
          end
          local asked = wanted
          lease_all(q, reply[2])
          if #reply[2] < asked or wanted == 0 then
            q = q + 1  -- emptied (or done); a dropped copy leaves the list's rest to look at
          end
        end
      else
        has_lmpop = false
      end
    end
    if not has_lmpop then
      local asked = wanted
      local ids = redis.call('RPOP', KEYS[4 + q], wanted)
      if ids then
        lease_all(q, ids)
      end
      if not ids or #ids < asked or wanted == 0 then
        q = q + 1
      end
    end
  end
end

if #prefs == 0 then
  local q = 1
  while q <= Q and wanted > 0 do
    if unlimited(q) then
      local last = q
      while last < Q and unlimited(last + 1) do
        last = last + 1
      end
      pop_run(q, last)
      q = last + 1
    else
      while wanted > 0 and take(q) do
      end
      q = q + 1
    end
  end
else
  for _, preferred in ipairs(prefs) do
    if wanted <= 0 then
      break
    end
    local got = nil
    for q = 1, Q do
      if group_of[q] == preferred then
        got = take(q)
        if got then
          break
        end
      end
    end
    if not got then
      for q = 1, Q do
        got = take(q)
        if got then
          break
        end
      end
    end
    if not got then
      break
    end
  end
end
out[1] = wait_ms
return out
