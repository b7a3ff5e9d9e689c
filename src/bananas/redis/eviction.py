"""The server's ``maxmemory-policy``: Bananas needs ``noeviction``.

With any other policy a full Redis deletes keys to make room, and Bananas' keys are
the only copy of an accepted job: its record, its place in a ready list, its lease. An
``allkeys-*`` policy may evict any of them (a test lost 393 of 600 accepted jobs with
``allkeys-lru``, with no error anywhere); a ``volatile-*`` policy evicts keys with a
TTL (finished records, results, worker announcements) before their time. BullMQ warns
on the same setting for the same reason. With ``noeviction`` a full Redis refuses
writes instead, which Bananas reports and retries.

``CONFIG GET`` is often forbidden (ACL users without ``@admin``, managed services), so
the policy is read from ``INFO memory`` when it is.
"""

from __future__ import annotations

import contextlib
from enum import StrEnum

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.cluster

SAFE_POLICY = "noeviction"
#: The documented override: run although the policy may evict Bananas' keys.
ALLOW_ENV = "BANANAS_ALLOW_EVICTION"
ALLOW_FLAG = "--allow-eviction"


class EvictionRisk(StrEnum):
    NONE = "none"  # noeviction
    UNKNOWN = "unknown"  # neither CONFIG GET nor INFO would tell
    SOME = "some"  # volatile-*: keys with a TTL go first
    ANY = "any"  # allkeys-*: any key, queued jobs included


def risk(policy: str | None) -> EvictionRisk:
    if policy is None:
        return EvictionRisk.UNKNOWN
    if policy == SAFE_POLICY:
        return EvictionRisk.NONE
    return EvictionRisk.ANY if policy.startswith("allkeys") else EvictionRisk.SOME


def describe(policy: str | None) -> str:
    """One line for a log or stderr: what the policy means and what to do."""
    level = risk(policy)
    if level is EvictionRisk.UNKNOWN:
        return (
            "could not read the server's maxmemory-policy (CONFIG GET and INFO are not allowed): "
            f"make sure it is {SAFE_POLICY}, or a full Redis may delete accepted jobs"
        )
    if level is EvictionRisk.ANY:
        return (
            f"Redis maxmemory-policy is {policy}: when memory is full Redis deletes any key, "
            f"accepted jobs included; set maxmemory-policy {SAFE_POLICY} "
            f"(or {ALLOW_FLAG} / {ALLOW_ENV}=1 to run anyway)"
        )
    return (
        f"Redis maxmemory-policy is {policy}: when memory is full Redis deletes keys with a TTL "
        f"(finished jobs' records and results) before their time; set maxmemory-policy {SAFE_POLICY}"
    )


def _from_config(reply: object) -> str | None:
    if isinstance(reply, dict):
        for key, value in reply.items():
            name = key.decode() if isinstance(key, bytes) else str(key)
            if name == "maxmemory-policy":
                return value.decode() if isinstance(value, bytes) else str(value)
    return None


def _from_info(reply: object) -> str | None:
    if isinstance(reply, dict):
        value = reply.get("maxmemory_policy")
        if value is not None:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


# CONFIG or INFO refused (NOPERM, renamed command): try the other, then give up quietly.
_REFUSED = (redis.exceptions.ResponseError,)


def read_policy(client: redis.Redis) -> str | None:
    """The policy, or None when the server will not say. Connection errors propagate.
    On Redis Cluster the riskiest of every master's."""
    if isinstance(client, redis.cluster.RedisCluster):
        return worst([_read(client, node) for node in client.get_primaries()])
    return _read(client, None)


def _read(client: redis.Redis, node: object) -> str | None:
    target = {} if node is None else {"target_nodes": node}
    with contextlib.suppress(*_REFUSED):
        found = _from_config(client.config_get("maxmemory-policy", **target))
        if found:
            return found
    with contextlib.suppress(*_REFUSED):
        return _from_info(client.info("memory", **target))
    return None


async def read_policy_async(client: aioredis.Redis) -> str | None:
    """``read_policy`` for the asyncio client. On Redis Cluster every master is asked
    and the riskiest answer wins (each master holds the only copy of its slots' jobs)."""
    if isinstance(client, aiocluster.RedisCluster):
        found = [await _read_async(client, node) for node in client.get_primaries()]
        return worst(found)
    return await _read_async(client, None)


async def _read_async(client: aioredis.Redis, node: object) -> str | None:
    target = {} if node is None else {"target_nodes": node}
    with contextlib.suppress(*_REFUSED):
        found = _from_config(await client.config_get("maxmemory-policy", **target))
        if found:
            return found
    with contextlib.suppress(*_REFUSED):
        return _from_info(await client.info("memory", **target))
    return None


_RANK = {EvictionRisk.NONE: 0, EvictionRisk.UNKNOWN: 1, EvictionRisk.SOME: 2, EvictionRisk.ANY: 3}


def worst(policies: list[str | None]) -> str | None:
    """The riskiest of several servers' policies (``noeviction`` when there are none)."""
    return max(policies, key=lambda policy: _RANK[risk(policy)], default=SAFE_POLICY)
