"""A worker on many routing keys (one per tenant): idle CPU and pickup latency.

    python -m benchmarks.many_keys                    # 10,000 routing keys
    python -m benchmarks.many_keys --keys 1000 --idle 5 --jobs 50

One in-process worker listens on ``--keys`` routing keys of a fresh embedded server.
Idle CPU: the process's CPU time over ``--idle`` seconds with nothing queued (the
benchmark's own thread sleeps meanwhile, so it is the worker's). Pickup: a job is
submitted to a random one of the keys, one at a time; the time from the submit call to
the handler's start, p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bananas import Client, Job, Registry, Worker
from bananas.config import WorkerSettings
from bananas.embedded import EmbeddedServer


def run(keys: int, idle: float, jobs: int) -> dict[str, float]:
    started: dict[str, float] = {}
    arrived = threading.Event()
    registry = Registry()

    @registry.handler("tenant_job")
    async def tenant_job(job: Job) -> None:
        started[job.id] = time.perf_counter()
        arrived.set()

    routing_keys = tuple(f"tenant-{n:05d}" for n in range(keys))
    with tempfile.TemporaryDirectory(prefix="bananas-many-keys-") as data, EmbeddedServer(data) as server:
        worker = Worker(registry, WorkerSettings(redis_url=server.url, routing_keys=routing_keys, concurrency=4))
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),), daemon=True)
        thread.start()
        asyncio.run_coroutine_threadsafe(worker.wait_ready(), loop).result(120)
        time.sleep(3.0)  # past start-up (subscriptions, first full look)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(idle)
        idle_cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        rng = random.Random(1)
        pickups: list[float] = []
        with Client(server.url) as client:
            for _ in range(jobs):
                arrived.clear()
                t0 = time.perf_counter()
                job_id = client.submit_job("tenant_job", None, routing_key=rng.choice(routing_keys))
                if not arrived.wait(30):
                    raise SystemExit(f"job {job_id} was not picked up within 30 s")
                pickups.append((started[job_id] - t0) * 1000)
        loop.call_soon_threadsafe(worker.stop)
        thread.join(30)
    pickups.sort()
    return {
        "routing_keys": keys,
        "idle_cpu_percent": idle_cpu * 100,
        "pickup_ms_p50": statistics.median(pickups),
        "pickup_ms_p99": pickups[min(len(pickups) - 1, int(len(pickups) * 0.99))],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--idle", type=float, default=10.0, help="seconds of idle measurement")
    p.add_argument("--jobs", type=int, default=200, help="jobs for the pickup latency")
    args = p.parse_args(argv)
    result = run(args.keys, args.idle, args.jobs)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"routing keys {result['routing_keys']}: idle CPU {result['idle_cpu_percent']:.1f}% of a core, "
        f"pickup p50 {result['pickup_ms_p50']:.2f} ms, p99 {result['pickup_ms_p99']:.2f} ms "
        f"({args.jobs} jobs; load average {load} on {os.cpu_count()} cores)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
