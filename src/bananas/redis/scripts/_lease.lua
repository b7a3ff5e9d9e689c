-- _lease: the lease bookkeeping shared by every script that ends a lease; prepended by
-- the loader (redis/scripts.py) to each script that calls end_lease. Such a script's
-- first four keys are always (calls.LEASE_KEYS):
--   KEYS[1] leases (zset)  KEYS[2] lease owners (hash)
--   KEYS[3] lease routes (hash)  KEYS[4] in flight (hash)
-- end_lease(id): drop the lease and owner of ``id``, and give back the fleet
-- concurrency slot it held, if any. The caller has checked the owner token first.
local function end_lease(id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  local route = redis.call('HGET', KEYS[3], id)
  if route then
    redis.call('HDEL', KEYS[3], id)
    redis.call('HINCRBY', KEYS[4], route, -1)
  end
end
