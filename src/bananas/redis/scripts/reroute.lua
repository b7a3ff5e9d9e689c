-- reroute: a leased job whose record names another routing key than the list it was
-- taken from goes, untouched and unrun, to the ready list of its own routing key.
--
-- The original Python and TypeScript SDKs push every job to the legacy list
-- bananas:queue:<priority>, even one whose record says "routing_key": "gpu"; a default
-- worker that takes it from there must not run it. The move is one step: the job is
-- never in no list and no lease, and no attempt is counted.
--
-- KEYS[1]  leases        bananas:leases
-- KEYS[2]  lease owners  bananas:lease:owners
-- KEYS[3]  lease routes  bananas:lease:routes
-- KEYS[4]  in flight     bananas:limits:inflight
-- KEYS[5]  ready list    bananas:route:<routing_key>:queue:<priority> of the record
-- KEYS[6]  routing keys  bananas:routing_keys (so `bananas queues` lists the key)
-- ARGV[1]  job id
-- ARGV[2]  lease token the caller holds
-- ARGV[3]  the record's routing key
-- ARGV[4]  wake-up channel of that routing key
--
-- Returns 1, or 0 when the caller no longer holds the lease (nothing written).
-- The id goes on the right (RPUSH): it was already waiting, so it is next in line.
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
end_lease(ARGV[1])
redis.call('RPUSH', KEYS[5], ARGV[1])
redis.call('SADD', KEYS[6], ARGV[3])
notify(ARGV[4], '1')
return 1
