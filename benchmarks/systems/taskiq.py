"""taskiq + taskiq-redis adapter for the benchmark suite (contract: benchmarks/systems/_peer_common.py).

    python benchmarks/systems/taskiq.py FIGURE --redis-url URL --n N [--processes P]

``RedisStreamBroker`` (Redis streams, consumer group, acknowledgements), no result
backend.  taskiq has only an asyncio client: ``submit`` awaits ``task.kiq()`` one call at
a time, and there is no bulk enqueue.  The producer calls ``broker.startup()`` first: it
creates the consumer group (at ``$``), so jobs queued before the worker starts are
delivered.  Worker: ``taskiq worker benchmarks.systems.taskiq:broker --workers P`` with
taskiq's defaults (``--max-async-tasks 100``, uvloop when installed, ack when saved),
log level WARNING.  See benchmarks/peers.md.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # this file's name shadows the ``taskiq`` package: drop its directory from sys.path
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(os.path.dirname(_here)))
    from benchmarks.systems._peer_common import main

    main("benchmarks.systems.taskiq")
    raise SystemExit(0)

from typing import Any

from taskiq_redis import RedisStreamBroker

from benchmarks.systems import _peer_common as common

QUEUE = "bench"

broker = RedisStreamBroker(url=common.env_url(), queue_name=QUEUE)


@broker.task(task_name="bench.noop")
async def noop(i: int | None = None) -> None:
    await common.handle_async(i)


class Peer(common.PeerBase):
    name = "taskiq"
    variants = ("default",)
    client = "async"

    async def aopen(self) -> None:
        await broker.startup()

    async def aclose(self) -> None:
        await broker.shutdown()

    async def asubmit(self, i: int | None) -> None:
        if i is None:
            await noop.kiq()
        else:
            await noop.kiq(i)

    def worker_specs(self) -> list[common.WorkerSpec]:
        argv = [
            common.bin_path("taskiq"), "worker", "benchmarks.systems.taskiq:broker",
            "--workers", str(self.processes), "--log-level", "WARNING",
        ]  # fmt: skip
        return [common.WorkerSpec(argv)]

    def config(self) -> dict[str, Any]:
        return {
            "worker": f"taskiq worker --workers {self.processes} (max-async-tasks 100, uvloop)",
            "broker": "taskiq_redis.RedisStreamBroker",
            "result_backend": None,
            "client": "asyncio (task.kiq)",
        }

    def packages(self) -> tuple[str, ...]:
        return ("taskiq", "taskiq-redis", "uvloop")
