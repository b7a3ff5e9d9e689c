"""The same work on one standalone node and on a 3-master Redis Cluster: drain rate, pickup
latency and server CPU per job on each node.

    python -m benchmarks.cluster                         # 10,000 jobs, 200 pickups, 3 repeats
    python -m benchmarks.cluster --n 500 --pickup-jobs 20 --repeats 1    # seconds (smoke)

Each repeat starts a fresh embedded standalone server and a fresh cluster (3 masters, no
replicas unless ``--replicas``: the standalone node has none either), both from the
suite's own harness (tests/cluster/group.py). On each:

- submit: ``--n`` no-op jobs with ``submit_many`` (batches of 500) spread evenly over 5
  routing keys that live on the 3 masters (2 + 2 + 1);
- drain: one in-process worker (concurrency 10) on those 5 routing keys, from its start
  to the last job's end (``drain_rate``) and from the first job's start (``steady_rate``);
- pickup: the same worker idle; one job at a time to a random one of the 5 keys, the time
  from the submit call to the handler's start, p50 and p99;
- server CPU: ``INFO cpu`` (user + sys) of every node before and after the submit and the
  drain, in microseconds per job, per node.

Prints one line per system, the cluster/standalone ratios, and a JSON object on the last
line. Every server is stopped (by PID) at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import redis

from bananas import Client, Job, Registry, Worker, WorkerSettings
from bananas.embedded import EmbeddedServer
from tests.cluster.group import ClusterGroup, master_index, spread_keys

#: 5 routing keys over the 3 masters: alpha, delta, beta, gamma, default (m0, m1, m2, m0, m1).
ROUTING_KEYS = tuple(spread_keys(2)[:5])
BATCH = 500
CONCURRENCY = 10


def _cpu(ports: list[int]) -> list[float]:
    out = []
    for port in ports:
        with redis.Redis(host="127.0.0.1", port=port) as r:
            info = r.info("cpu")
        out.append(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))
    return out


def _per_job_us(before: list[float], after: list[float], n: int) -> list[float]:
    return [round((a - b) / n * 1e6, 2) for a, b in zip(after, before, strict=True)]


class _Bench:
    """One worker thread (its own event loop) on ``ROUTING_KEYS`` of ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.done = 0
        self.first_start: float | None = None
        self.last_end = 0.0
        self.started: dict[str, float] = {}
        self.arrived = threading.Event()
        self.registry = Registry()
        self.registry.add("noop", self._noop)
        self.registry.add("ping", self._ping)
        self.loop = asyncio.new_event_loop()
        self.worker: Worker | None = None
        self.thread: threading.Thread | None = None

    async def _noop(self, job: Job) -> None:
        now = time.perf_counter()
        if self.first_start is None:
            self.first_start = now
        self.done += 1
        self.last_end = now

    async def _ping(self, job: Job) -> None:
        self.started[job.id] = time.perf_counter()
        self.arrived.set()

    def start(self) -> float:
        settings = WorkerSettings(redis_url=self.url, routing_keys=ROUTING_KEYS, concurrency=CONCURRENCY)
        self.worker = Worker(self.registry, settings)
        began = time.perf_counter()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.worker.run(),), daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.worker.wait_ready(), self.loop).result(60)
        return began

    def stop(self) -> None:
        if self.worker is not None and self.thread is not None:
            self.loop.call_soon_threadsafe(self.worker.stop)
            self.thread.join(30)


def measure(url: str, ports: list[int], n: int, pickup_jobs: int) -> dict[str, Any]:
    """Submit, drain, then pickup on ``url``; ``ports``: the nodes whose CPU is read."""
    per_key = [n // len(ROUTING_KEYS) + (1 if i < n % len(ROUTING_KEYS) else 0) for i in range(len(ROUTING_KEYS))]
    bench = _Bench(url)
    with Client(url) as client:
        cpu0 = _cpu(ports)
        t0 = time.perf_counter()
        for key, count in zip(ROUTING_KEYS, per_key, strict=True):
            for first in range(0, count, BATCH):
                client.submit_many("noop", [None] * min(BATCH, count - first), routing_key=key)
        submit_s = time.perf_counter() - t0
        cpu1 = _cpu(ports)
        try:
            began = bench.start()
            deadline = time.monotonic() + max(60.0, n / 100)
            while bench.done < n:
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {bench.done} of {n} jobs ran on {url}")
                time.sleep(0.002)
            cpu2 = _cpu(ports)
            assert bench.first_start is not None
            drain_s = bench.last_end - began
            steady_s = bench.last_end - bench.first_start
            time.sleep(1.0)  # idle: past the drain's last acks
            rng = random.Random(1)
            pickups: list[float] = []
            for _ in range(pickup_jobs):
                bench.arrived.clear()
                t = time.perf_counter()
                job_id = client.submit_job("ping", None, routing_key=rng.choice(ROUTING_KEYS))
                if not bench.arrived.wait(30):
                    raise SystemExit(f"job {job_id} was not picked up within 30 s on {url}")
                pickups.append((bench.started[job_id] - t) * 1000)
        finally:
            bench.stop()
    pickups.sort()
    return {
        "submit_rate": n / submit_s,
        "drain_rate": n / drain_s,
        "steady_rate": (n - 1) / steady_s if steady_s > 0 else 0.0,
        "pickup_ms_p50": statistics.median(pickups),
        "pickup_ms_p99": pickups[min(len(pickups) - 1, int(len(pickups) * 0.99))],
        "submit_cpu_us_per_job": _per_job_us(cpu0, cpu1, n),
        "drain_cpu_us_per_job": _per_job_us(cpu1, cpu2, n),
    }


def standalone(data: Path, n: int, pickup_jobs: int) -> dict[str, Any]:
    server = EmbeddedServer(data / "standalone", extra_args=("--maxmemory-policy", "noeviction"))
    try:
        server.start()
        return measure(server.url, [server.port], n, pickup_jobs)
    finally:
        server.kill()


def cluster(data: Path, n: int, pickup_jobs: int, replicas: bool) -> dict[str, Any]:
    group = ClusterGroup(data / "cluster", replicas=replicas)
    try:
        group.start()
        return measure(group.url, [node.port for node in group.initial_masters], n, pickup_jobs)
    finally:
        group.stop()


def _median(rows: list[dict[str, Any]], key: str) -> Any:
    values = [row[key] for row in rows]
    if isinstance(values[0], list):
        return [round(statistics.median(column), 2) for column in zip(*values, strict=True)]
    return statistics.median(values)


def run(n: int, pickup_jobs: int, repeats: int, replicas: bool, log: Callable[[str], None]) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"standalone": [], "cluster": []}
    for repeat in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bananas-cluster-bench-") as tmp:
            data = Path(tmp)
            runs["standalone"].append(standalone(data, n, pickup_jobs))
            log(f"repeat {repeat + 1}: standalone {runs['standalone'][-1]['drain_rate']:.0f} jobs/s")
            runs["cluster"].append(cluster(data, n, pickup_jobs, replicas))
            log(f"repeat {repeat + 1}: cluster {runs['cluster'][-1]['drain_rate']:.0f} jobs/s")
    medians = {system: {key: _median(rows, key) for key in rows[0]} for system, rows in runs.items()}
    s, c = medians["standalone"], medians["cluster"]
    return {
        "n": n,
        "pickup_jobs": pickup_jobs,
        "repeats": repeats,
        "replicas": replicas,
        "routing_keys": list(ROUTING_KEYS),
        "masters_of_keys": [master_index(k) for k in ROUTING_KEYS],
        "standalone": s,
        "cluster": c,
        "ratio": {
            "drain_rate": c["drain_rate"] / s["drain_rate"],
            "steady_rate": c["steady_rate"] / s["steady_rate"],
            "submit_rate": c["submit_rate"] / s["submit_rate"],
            "pickup_ms_p50": c["pickup_ms_p50"] / s["pickup_ms_p50"],
        },
        "runs": runs,
        "load_average": os.getloadavg(),
        "cores": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000, help="no-op jobs submitted then drained")
    p.add_argument("--pickup-jobs", type=int, default=200, help="jobs for the pickup latency")
    p.add_argument("--repeats", type=int, default=3, help="fresh servers each time; medians reported")
    p.add_argument("--replicas", action="store_true", help="give each cluster master a replica")
    args = p.parse_args(argv)
    result = run(args.n, args.pickup_jobs, args.repeats, args.replicas, lambda line: print(line, flush=True))
    for system in ("standalone", "cluster"):
        row = result[system]
        print(
            f"{system:<10}: drain {row['drain_rate']:,.0f} jobs/s (steady {row['steady_rate']:,.0f}), "
            f"submit_many {row['submit_rate']:,.0f} jobs/s, pickup p50 {row['pickup_ms_p50']:.2f} ms "
            f"p99 {row['pickup_ms_p99']:.2f} ms, server CPU per drained job (µs, per node) "
            f"{row['drain_cpu_us_per_job']}, per submitted job {row['submit_cpu_us_per_job']}"
        )
    ratio = result["ratio"]
    load = ", ".join(f"{x:.2f}" for x in result["load_average"])
    print(
        f"cluster / standalone: drain {ratio['drain_rate']:.2f}x, steady {ratio['steady_rate']:.2f}x, "
        f"submit {ratio['submit_rate']:.2f}x, pickup p50 {ratio['pickup_ms_p50']:.2f}x "
        f"({args.n} jobs on {len(ROUTING_KEYS)} routing keys, {args.repeats} repeats; "
        f"load average {load} on {result['cores']} cores)"
    )
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
