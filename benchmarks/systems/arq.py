"""arq adapter for the benchmark suite (contract: benchmarks/systems/_peer_common.py).

    python benchmarks/systems/arq.py FIGURE --redis-url URL --n N [--processes P] [--variant tuned|default]

arq has only an asyncio client: ``submit`` awaits ``ArqRedis.enqueue_job`` one call at a
time, and there is no bulk enqueue.  Workers: P ``arq`` CLI processes on the same queue.
Variants (worker side only):
  tuned    ``poll_delay=0.01`` s (else arq's defaults, ``max_jobs=10``): arq polls its
           queue (a sorted set) and sleeps ``poll_delay`` between polls, so its default of
           0.5 s makes an idle worker's pickup latency 250 ms on average.
  default  arq's defaults (``poll_delay=0.5``, ``max_jobs=10``).
Everything else is arq's default (pickle serializer, results kept 3600 s).  Worker log
level WARNING.  See benchmarks/peers.md.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # this file's name shadows the ``arq`` package: drop its directory from sys.path
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(os.path.dirname(_here)))
    from benchmarks.systems._peer_common import main

    main("benchmarks.systems.arq")
    raise SystemExit(0)

from typing import Any, ClassVar

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from benchmarks.systems import _peer_common as common

SETTINGS = {
    "tuned": {"poll_delay": 0.01, "max_jobs": 10},
    "default": {"poll_delay": 0.5, "max_jobs": 10},
}
_chosen = SETTINGS.get(common.env_variant("tuned"), SETTINGS["tuned"])
POLL_DELAY = float(os.environ.get("BENCH_ARQ_POLL_DELAY") or _chosen["poll_delay"])
MAX_JOBS = int(os.environ.get("BENCH_ARQ_MAX_JOBS") or _chosen["max_jobs"])

LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"level": "WARNING", "class": "logging.StreamHandler"}},
    "loggers": {"arq": {"handlers": ["stderr"], "level": "WARNING"}},
}


async def noop(ctx: dict[str, Any], i: int | None = None) -> None:
    await common.handle_async(i)


class WorkerSettings:
    functions: ClassVar[list[Any]] = [noop]
    redis_settings = RedisSettings.from_dsn(common.env_url())
    poll_delay = POLL_DELAY
    max_jobs = MAX_JOBS


class Peer(common.PeerBase):
    name = "arq"
    variants = ("tuned", "default")
    client = "async"

    async def aopen(self) -> None:
        self.pool: ArqRedis = await create_pool(RedisSettings.from_dsn(self.args.redis_url))

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def asubmit(self, i: int | None) -> None:
        if i is None:
            await self.pool.enqueue_job("noop")
        else:
            await self.pool.enqueue_job("noop", i)

    def worker_specs(self) -> list[common.WorkerSpec]:
        argv = [
            common.bin_path("arq"), "benchmarks.systems.arq.WorkerSettings",
            "--custom-log-dict", "benchmarks.systems.arq.LOG_CONFIG",
        ]  # fmt: skip
        return [common.WorkerSpec(argv) for _ in range(self.processes)]

    def config(self) -> dict[str, Any]:
        return {
            "worker": f"{self.processes} x arq WorkerSettings",
            "poll_delay_s": POLL_DELAY,
            "max_jobs": MAX_JOBS,
            "client": "asyncio (ArqRedis.enqueue_job)",
        }
