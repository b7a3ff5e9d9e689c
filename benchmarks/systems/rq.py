"""RQ adapter for the benchmark suite (contract: benchmarks/systems/_peer_common.py).

    python benchmarks/systems/rq.py FIGURE --redis-url URL --n N [--processes P] [--variant simple|fork]

Variants (worker side only; the producer is the same):
  simple  ``rq worker --worker-class rq.worker.SimpleWorker``: runs jobs in the worker process.
  fork    ``rq worker`` (the default ``Worker``): forks a work horse for every job.
P processes = P independent ``rq worker`` processes on the same queue (RQ's usual deployment),
each started as the ``rq`` CLI after importing the job module (RQ's performance notes:
preload what the jobs import, or every forked work horse imports it again).
Bulk = ``Queue.enqueue_many`` (one pipeline per batch).  See benchmarks/peers.md.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # this file's name shadows the ``rq`` package: drop its directory from sys.path
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(os.path.dirname(_here)))
    from benchmarks.systems._peer_common import main

    main("benchmarks.systems.rq")
    raise SystemExit(0)

from typing import Any

import redis
from rq import Queue

from benchmarks.systems import _peer_common as common

QUEUE = "bench"
WORKER_CLASSES = {"simple": "rq.worker.SimpleWorker", "fork": "rq.worker.Worker"}
# RQ's performance notes: import the job's module in the worker before it forks, or every
# work horse imports it again.  This is the ``rq`` CLI with that one import first.
PRELOAD_LAUNCHER = "import benchmarks.systems.rq\nfrom rq.cli import main\nmain()\n"


def noop(i: int | None = None) -> None:
    common.handle_sync(i)


class Peer(common.PeerBase):
    name = "rq"
    variants = ("simple", "fork")
    client = "sync"
    bulk_api = "Queue.enqueue_many"

    def open(self) -> None:
        self.conn = redis.Redis.from_url(self.args.redis_url)
        self.queue = Queue(QUEUE, connection=self.conn)

    def close(self) -> None:
        self.conn.close()

    def submit(self, i: int | None) -> None:
        if i is None:
            self.queue.enqueue(noop)
        else:
            self.queue.enqueue(noop, i)

    def submit_bulk(self, count: int) -> None:
        self.queue.enqueue_many([Queue.prepare_data(noop) for _ in range(count)])

    def worker_specs(self) -> list[common.WorkerSpec]:
        argv = [
            sys.executable, "-c", PRELOAD_LAUNCHER, "worker",
            "--url", self.args.redis_url,
            "--worker-class", WORKER_CLASSES[self.variant],
            "--quiet",
            "--disable-job-desc-logging",
            QUEUE,
        ]  # fmt: skip
        return [common.WorkerSpec(argv) for _ in range(self.processes)]

    def config(self) -> dict[str, Any]:
        return {
            "worker": f"{self.processes} x rq worker --worker-class {WORKER_CLASSES[self.variant]}"
            " (job module preloaded before forking)",
            "queue": QUEUE,
            "logging": "--quiet (WARNING)",
            "results": "library default (result kept 500 s)",
        }
