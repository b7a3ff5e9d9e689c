#!lua flags=allow-oom
-- extend: push back the lease deadline of jobs the caller still holds (heartbeat).
--
-- KEYS[1]  leases        bananas:leases
-- KEYS[2]  lease owners  bananas:lease:owners
-- ARGV[1]  lease length, ms: the new deadline is the server's TIME plus this
-- ARGV[2..]  id_1, token_1, id_2, token_2, ...
--
-- Returns the ids whose lease the caller no longer holds (recovered elsewhere).
--
-- Flagged allow-oom: while Redis refuses writes for memory (maxmemory reached under
-- noeviction), a live worker must still keep its jobs, or the fleet would take them
-- back and run them again. Updating a score of an existing member needs no new memory.
-- A server without script flags runs this without the flags line; there a script is
-- refused for memory only at its first write, and only if that write may grow memory.
-- So the deadline is moved with ZREM (which never grows memory) and then ZADD, which
-- is the same as ZADD XX and is accepted on such a server too.
--
-- Time: the deadline is computed here from the server's TIME, not by the caller, so an
-- extension that waited in a stalled server still gives a full lease from when it runs.
local clock = redis.call('TIME')
local deadline = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id) == ARGV[i + 1] then
    if redis.call('ZREM', KEYS[1], id) == 1 then
      redis.call('ZADD', KEYS[1], deadline, id)
    end
  else
    lost[#lost + 1] = id
  end
end
return lost
