-- dlq_purge: delete dead-letter entries with their records and results, atomically.
--
-- KEYS[1]          dead letters   bananas:queue:dead
-- KEYS[2..N+1]     job records    bananas:job:<id>, in the order of the ids
-- KEYS[N+2..2N+1]  results        bananas:result:<id>, in the order of the ids
-- ARGV[1..N]       job ids
--
-- Returns how many ids were removed from the dead letters. A record is deleted only
-- when its id was still in the dead letters, so a job retried meanwhile (no longer
-- dead) keeps its record.
local n = #ARGV
local removed = 0
for i = 1, n do
  if redis.call('LREM', KEYS[1], 0, ARGV[i]) > 0 then
    redis.call('DEL', KEYS[1 + i], KEYS[1 + n + i])
    removed = removed + 1
  end
end
return removed
