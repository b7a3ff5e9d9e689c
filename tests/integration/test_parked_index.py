"""Parked lists that have emptied are dropped from their routing key's index."""

from __future__ import annotations

import redis
from support import eventually

from bananas import Registry


async def test_empty_parked_lists_leave_the_index(r: redis.Redis, start_worker) -> None:  # type: ignore[no-untyped-def]
    index = "bananas:route:default:parked"
    r.sadd(index, "normal:gone", "high:still_here", "bogus")
    r.lpush("bananas:route:default:queue:high:job:still_here", "some-id")
    await start_worker(Registry())
    await eventually(lambda: not r.sismember(index, "normal:gone"), what="the empty list to leave the index")
    assert r.sismember(index, "high:still_here")  # its list still holds a job
    assert r.sismember(index, "bogus")  # not ours to judge: left alone
