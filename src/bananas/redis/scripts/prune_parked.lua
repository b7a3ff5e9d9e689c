-- prune_parked: forget parked lists that have emptied, so workers stop looking at them.
--
-- KEYS[1]     parked index  bananas:route:<routing_key>:parked (set)
-- KEYS[2..]   the parked lists named by the members below, in the same order
-- ARGV[1..]   index members "<priority>:<name>", one per list
--
-- Returns how many members were removed. The check and the removal are one step, and
-- park adds the member back in the same step as it pushes, so a list that gets a job
-- is never left out of the index.
local removed = 0
for i = 1, #ARGV do
  if redis.call('LLEN', KEYS[i + 1]) == 0 then
    removed = removed + redis.call('SREM', KEYS[1], ARGV[i])
  end
end
return removed
