"""Dramatiq adapter for the benchmark suite (contract: benchmarks/systems/_peer_common.py).

    python benchmarks/systems/dramatiq.py FIGURE --redis-url URL --n N [--processes P]

``RedisBroker`` with Dramatiq's default middleware; actor with ``max_retries=0``.
Worker: ``dramatiq benchmarks.systems.dramatiq --processes P --threads 8`` (the CLI's
default of 8 threads per process).  Bulk = ``group(...).run()`` (Dramatiq has no batch
enqueue: a group enqueues its messages one by one).  See benchmarks/peers.md.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # this file's name shadows the ``dramatiq`` package: drop its directory from sys.path
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(os.path.dirname(_here)))
    from benchmarks.systems._peer_common import main

    main("benchmarks.systems.dramatiq")
    raise SystemExit(0)

from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from benchmarks.systems import _peer_common as common

QUEUE = "bench"
THREADS = 8

broker = RedisBroker(url=common.env_url())
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop(i: int | None = None) -> None:
    common.handle_sync(i)


class Peer(common.PeerBase):
    name = "dramatiq"
    variants = ("default",)
    client = "sync"
    bulk_api = "group().run()"
    bulk_note = "no batch enqueue in Dramatiq; a group enqueues one message at a time"

    def submit(self, i: int | None) -> None:
        if i is None:
            noop.send()
        else:
            noop.send(i)

    def submit_bulk(self, count: int) -> None:
        dramatiq.group(noop.message() for _ in range(count)).run()

    def close(self) -> None:
        broker.close()

    def worker_specs(self) -> list[common.WorkerSpec]:
        argv = [
            common.bin_path("dramatiq"), "benchmarks.systems.dramatiq",
            "--processes", str(self.processes), "--threads", str(THREADS), "--queues", QUEUE,
        ]  # fmt: skip
        return [common.WorkerSpec(argv)]

    def config(self) -> dict[str, Any]:
        return {
            "worker": f"dramatiq --processes {self.processes} --threads {THREADS}",
            "broker": "RedisBroker, default middleware",
            "actor": "max_retries=0",
        }
