"""SAQ adapter for the benchmark suite (contract: benchmarks/systems/_peer_common.py).

    python benchmarks/systems/saq.py FIGURE --redis-url URL --n N [--processes P]

SAQ has only an asyncio client: ``submit`` awaits ``Queue.enqueue`` one call at a time,
and there is no bulk enqueue (``Queue.map`` enqueues and then waits for the results).
Worker: ``saq benchmarks.systems.saq.settings --workers P`` with ``concurrency=10`` (SAQ's
default) and blocking dequeue (SAQ's default, no polling); log level WARNING (the CLI's
default).  See benchmarks/peers.md.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # this file's name shadows the ``saq`` package: drop its directory from sys.path
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(os.path.dirname(_here)))
    from benchmarks.systems._peer_common import main

    main("benchmarks.systems.saq")
    raise SystemExit(0)

from typing import Any

from saq import Queue

from benchmarks.systems import _peer_common as common

QUEUE = "bench"
CONCURRENCY = 10

queue = Queue.from_url(common.env_url(), name=QUEUE)


async def noop(ctx: dict[str, Any], *, i: int | None = None) -> None:
    await common.handle_async(i)


settings = {
    "queue": queue,
    "functions": [noop],
    "concurrency": CONCURRENCY,
}


class Peer(common.PeerBase):
    name = "saq"
    variants = ("default",)
    client = "async"

    async def aopen(self) -> None:
        self.queue = Queue.from_url(self.args.redis_url, name=QUEUE)
        await self.queue.connect()

    async def aclose(self) -> None:
        await self.queue.disconnect()

    async def asubmit(self, i: int | None) -> None:
        if i is None:
            await self.queue.enqueue("noop")
        else:
            await self.queue.enqueue("noop", i=i)

    def worker_specs(self) -> list[common.WorkerSpec]:
        argv = [common.bin_path("saq"), "benchmarks.systems.saq.settings", "--workers", str(self.processes)]
        return [common.WorkerSpec(argv)]

    def config(self) -> dict[str, Any]:
        return {
            "worker": f"saq settings --workers {self.processes}",
            "concurrency": CONCURRENCY,
            "client": "asyncio (Queue.enqueue)",
        }
