-- repair_inflight: make the fleet concurrency bookkeeping agree with the leases again
-- (the reconciler's repair; every other script keeps it exact).
--
-- KEYS[1]  leases        bananas:leases
-- KEYS[2]  lease owners  bananas:lease:owners
-- KEYS[3]  lease routes  bananas:lease:routes (id -> routing key, for limited keys)
-- KEYS[4]  in flight     bananas:limits:inflight (routing key -> jobs in flight)
--
-- A lease route whose id has no lease owner is a slot nobody will ever give back: it is
-- dropped. Then each routing key's in-flight count is set to the number of lease
-- routes naming it (a count that drifted would hold a routing key at its limit forever,
-- or let it run above it). Cost: O(jobs in flight).
--
-- Returns a flat array: {'route', id, routing key, ...} for each dropped route, then
-- {'count', routing key, old, new, ...} for each corrected count.
local out = {}
local routes = redis.call('HGETALL', KEYS[3])
local counts = {}
for i = 1, #routes, 2 do
  local id, route = routes[i], routes[i + 1]
  if redis.call('HEXISTS', KEYS[2], id) == 0 then
    redis.call('HDEL', KEYS[3], id)
    out[#out + 1] = 'route'
    out[#out + 1] = id
    out[#out + 1] = route
  else
    counts[route] = (counts[route] or 0) + 1
  end
end
local current = redis.call('HGETALL', KEYS[4])
local seen = {}
for i = 1, #current, 2 do
  local route, value = current[i], tonumber(current[i + 1]) or 0
  seen[route] = true
  local want = counts[route] or 0
  if value ~= want then
    redis.call('HSET', KEYS[4], route, want)
    out[#out + 1] = 'count'
    out[#out + 1] = route
    out[#out + 1] = tostring(value)
    out[#out + 1] = tostring(want)
  end
end
for route, want in pairs(counts) do
  if not seen[route] then
    redis.call('HSET', KEYS[4], route, want)
    out[#out + 1] = 'count'
    out[#out + 1] = route
    out[#out + 1] = '0'
    out[#out + 1] = tostring(want)
  end
end
return out
