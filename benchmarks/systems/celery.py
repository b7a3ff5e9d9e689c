"""Celery adapter for the benchmark suite (contract: benchmarks/systems/_peer_common.py).

    python benchmarks/systems/celery.py FIGURE --redis-url URL --n N [--processes P] [--variant threads|prefork]

Redis broker, no result backend (``task_ignore_result``), JSON serializer (the default).
Variants (worker side only):
  threads  P worker instances, each ``-P threads -c 10``.
  prefork  one worker instance ``-P prefork -c P`` (P pool processes, plus the consumer process).
Workers run with ``--without-gossip --without-mingle --without-heartbeat`` (no broadcast
chatter between nodes; the usual advice for a Redis broker) and log at WARNING.
Bulk = ``group(...).apply_async()`` (Celery has no batch enqueue: a group publishes its
messages one by one through one producer).  See benchmarks/peers.md.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # this file's name shadows the ``celery`` package: drop its directory from sys.path
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(os.path.dirname(_here)))
    from benchmarks.systems._peer_common import main

    main("benchmarks.systems.celery")
    raise SystemExit(0)

from typing import Any

from celery import Celery, group

from benchmarks.systems import _peer_common as common

QUEUE = "bench"
THREADS = 10
PREFETCH_MULTIPLIER = int(os.environ.get("BENCH_CELERY_PREFETCH") or 4)  # 4 is Celery's default

app = Celery("bench", broker=common.env_url())
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    task_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=PREFETCH_MULTIPLIER,
    broker_connection_retry_on_startup=True,
    worker_redirect_stdouts=False,
)


@app.task(name="bench.noop")
def noop(i: int | None = None) -> None:
    common.handle_sync(i)


class Peer(common.PeerBase):
    name = "celery"
    variants = ("threads", "prefork")
    client = "sync"
    bulk_api = "group().apply_async()"
    bulk_note = "no batch enqueue in Celery; a group publishes one message per task through one producer"

    def open(self) -> None:
        self.producer = app.producer_pool.acquire(block=True)

    def close(self) -> None:
        self.producer.release()

    def submit(self, i: int | None) -> None:
        if i is None:
            noop.apply_async(producer=self.producer)
        else:
            noop.apply_async((i,), producer=self.producer)

    def submit_bulk(self, count: int) -> None:
        group(noop.s() for _ in range(count)).apply_async(producer=self.producer)

    def worker_specs(self) -> list[common.WorkerSpec]:
        def argv(k: int, pool: str, concurrency: int) -> list[str]:
            return [
                common.bin_path("celery"), "-A", "benchmarks.systems.celery:app", "worker",
                "-P", pool, "-c", str(concurrency), "-Q", QUEUE, "-n", f"bench{k}@%h",
                "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
            ]  # fmt: skip

        if self.variant == "threads":
            return [common.WorkerSpec(argv(k, "threads", THREADS)) for k in range(self.processes)]
        return [common.WorkerSpec(argv(0, "prefork", self.processes))]

    def config(self) -> dict[str, Any]:
        if self.variant == "threads":
            worker = f"{self.processes} x celery worker -P threads -c {THREADS}"
        else:
            worker = f"1 x celery worker -P prefork -c {self.processes}"
        return {
            "worker": worker + " --without-gossip --without-mingle --without-heartbeat -l WARNING",
            "broker": "redis",
            "result_backend": None,
            "prefetch_multiplier": PREFETCH_MULTIPLIER,
            "producer": "one producer from app.producer_pool, passed to apply_async",
        }
