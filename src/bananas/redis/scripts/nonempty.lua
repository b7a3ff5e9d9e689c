-- nonempty: which of the given keys exist (a list, set or zset exists only while it has
-- members). The cheap look a worker on thousands of routing keys takes every second in
-- place of a dequeue over every list: the reply names only the few non-empty ones.
--
-- KEYS[1..N]  the keys to look at (ready lists, parked indexes, ...)
-- (no ARGV)
--
-- Returns the 1-based indexes into KEYS of the keys that exist, in order. EXISTS looks
-- at a chunk of keys in one command (unpack cannot spread more than a few thousand
-- values); only a chunk that holds something is looked at key by key.
local CHUNK = 500
local found = {}
for first = 1, #KEYS, CHUNK do
  local last = math.min(#KEYS, first + CHUNK - 1)
  if redis.call('EXISTS', unpack(KEYS, first, last)) > 0 then
    for i = first, last do
      if redis.call('EXISTS', KEYS[i]) == 1 then
        found[#found + 1] = i
      end
    end
  end
end
return found
