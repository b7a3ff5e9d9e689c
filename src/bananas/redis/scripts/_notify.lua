-- _notify: publishing a notice; prepended by the loader (redis/scripts.py) to each script
-- that calls notify. notify(channel, message): a channel of the cluster key layout
-- (bananas:route:{<routing_key>}:..., in its routing key's slot, like the keys the
-- script was given) is a shard channel: SPUBLISH, which stays on the node owning that
-- slot. Any other channel (the standalone layout; the fleet-wide bananas:cancel and
-- bananas:queue:scheduled:notify in both layouts) gets a plain PUBLISH. The test is the
-- layout's own prefix, not any brace: an id from a foreign client may hold a brace, and
-- a standalone subscriber (SUBSCRIBE) never hears an SPUBLISH.
local function notify(channel, message)
  if string.sub(channel, 1, 15) == 'bananas:route:{' then
    return redis.call('SPUBLISH', channel, message)
  end
  return redis.call('PUBLISH', channel, message)
end
