"""Huey adapter for the benchmark suite (contract: benchmarks/systems/_peer_common.py).

    python benchmarks/systems/huey.py FIGURE --redis-url URL --n N [--processes P] [--variant threads|greenlet]

``RedisHuey`` (blocking BRPOP dequeue, Huey's default for Redis), results off.
Variants (worker side only):
  threads   P consumer processes, each ``huey_consumer -k thread -w 8``.
  greenlet  P consumer processes, each ``-k greenlet -w 32``, started through a small
            launcher that applies gevent's monkey patch first (as Huey's docs ask).
Consumers run with ``-n`` (no periodic tasks), ``-C`` (no health checks) and ``-q``
(WARNING logging).  Bulk = ``Task.map`` (one LPUSH per task).  See benchmarks/peers.md.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # this file's name shadows the ``huey`` package: drop its directory from sys.path
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(os.path.dirname(_here)))
    from benchmarks.systems._peer_common import main

    main("benchmarks.systems.huey")
    raise SystemExit(0)

from typing import Any

from huey import RedisHuey

from benchmarks.systems import _peer_common as common

THREADS = 8
GREENLETS = 32
GEVENT_LAUNCHER = (
    "from gevent import monkey; monkey.patch_all()\nfrom huey.bin.huey_consumer import consumer_main\nconsumer_main()\n"
)

huey = RedisHuey("bench", url=common.env_url(), results=False)


@huey.task()
def noop(i: int | None = None) -> None:
    common.handle_sync(i)


class Peer(common.PeerBase):
    name = "huey"
    variants = ("threads", "greenlet")
    client = "sync"
    bulk_api = "Task.map()"
    bulk_note = "Task.map enqueues one task at a time (no pipeline)"

    def submit(self, i: int | None) -> None:
        if i is None:
            noop()
        else:
            noop(i)

    def submit_bulk(self, count: int) -> None:
        noop.map([()] * count)

    def worker_specs(self) -> list[common.WorkerSpec]:
        common_opts = ["-n", "-C", "-q"]
        target = "benchmarks.systems.huey.huey"
        if self.variant == "threads":
            argv = [common.bin_path("huey_consumer"), target, "-k", "thread", "-w", str(THREADS), *common_opts]
            return [common.WorkerSpec(argv) for _ in range(self.processes)]
        argv = [sys.executable, "-c", GEVENT_LAUNCHER, target, "-k", "greenlet", "-w", str(GREENLETS), *common_opts]
        return [common.WorkerSpec(argv) for _ in range(self.processes)]

    def config(self) -> dict[str, Any]:
        worker = {
            "threads": f"{self.processes} x huey_consumer -k thread -w {THREADS}",
            "greenlet": f"{self.processes} x huey_consumer -k greenlet -w {GREENLETS} (gevent monkey-patched)",
        }[self.variant]
        return {"worker": worker + " -n -C -q", "storage": "RedisHuey (blocking BRPOP)", "results": False}

    def packages(self) -> tuple[str, ...]:
        return ("huey", "gevent") if self.variant == "greenlet" else ("huey",)
