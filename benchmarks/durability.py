"""Cost of ``BANANAS_WAIT_REPLICAS``: a master with one replica on loopback, the same
work with ``WAIT 0`` (off) and ``WAIT 1``.

    python -m benchmarks.durability            # 2,000 submits and 2,000 drained jobs per case
    python -m benchmarks.durability --n 300    # seconds (a smoke run)

Figures: microseconds per ``submit_job`` (one job, one round trip), per job of
``submit_many`` (batches of 100), per job drained by one worker (concurrency 10), and
the master's CPU time per drained job (``INFO cpu``: dequeue, ack and the heartbeats).
On loopback a replica confirms within microseconds, so this is the floor of the cost:
across a network add one replica round trip per write batch (see docs/SCALING.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import redis

from bananas import Client, Registry, Worker, WorkerSettings
from bananas.embedded import EmbeddedServer

SYNC_NOW = ("--repl-diskless-sync-delay", "0")


def _wait_replica(master: EmbeddedServer) -> None:
    probe = redis.Redis(port=master.port, decode_responses=True)
    deadline = time.monotonic() + 20
    while (probe.info("replication").get("slave0") or {}).get("state") != "online":
        if time.monotonic() > deadline:
            raise RuntimeError("the replica did not come online")
        time.sleep(0.05)
    probe.close()


def _submit(url: str, n: int, replicas: int) -> dict[str, float]:
    with Client(url, wait_replicas=replicas) as client:
        client.redis.flushall()
        start = time.perf_counter()
        for i in range(n):
            client.submit_job("noop", i, routing_key="bench")
        one = (time.perf_counter() - start) / n
        start = time.perf_counter()
        for first in range(0, n, 100):
            client.submit_many("noop", list(range(first, min(n, first + 100))), routing_key="bench")
        many = (time.perf_counter() - start) / n
    return {"submit_us": one * 1e6, "submit_many_us_per_job": many * 1e6}


def _server_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _drain(url: str, n: int, replicas: int) -> tuple[float, float]:
    registry = Registry()
    done = [0]

    @registry.handler("noop")
    async def noop(job: Any) -> None:
        done[0] += 1

    with Client(url) as client:
        client.redis.flushall()
        for first in range(0, n, 500):
            client.submit_many("noop", list(range(first, min(n, first + 500))), routing_key="bench")
        worker = Worker(registry, WorkerSettings(redis_url=url, routing_keys=("bench",), wait_replicas=replicas))
        cpu_before = _server_cpu(client.redis)
        start = time.perf_counter()
        task = asyncio.create_task(worker.run())
        while done[0] < n:
            await asyncio.sleep(0.005)
        worker.stop()
        await task  # the last acks (and their WAIT) are written before run() returns
        seconds = time.perf_counter() - start
        cpu = _server_cpu(client.redis) - cpu_before
    return seconds / n * 1e6, cpu / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bananas-durability-") as data:
        master = EmbeddedServer(Path(data) / "m", extra_args=SYNC_NOW).start()
        replica = EmbeddedServer(
            Path(data) / "r", extra_args=(*SYNC_NOW, "--replicaof", "127.0.0.1", str(master.port))
        ).start()
        try:
            _wait_replica(master)
            rows = []
            for replicas in (0, 1):
                row = {"wait_replicas": replicas, **_submit(master.url, args.n, replicas)}
                row["drain_us_per_job"], row["server_cpu_us_per_drained_job"] = asyncio.run(
                    _drain(master.url, args.n, replicas)
                )
                rows.append(row)
        finally:
            replica.stop()
            master.stop()
    print(
        "| BANANAS_WAIT_REPLICAS | submit_job (µs) | submit_many, per job (µs) | drained, per job (µs) "
        "| master CPU per drained job (µs) |"
    )
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['wait_replicas']} | {row['submit_us']:.0f} | {row['submit_many_us_per_job']:.1f} "
            f"| {row['drain_us_per_job']:.0f} | {row['server_cpu_us_per_drained_job']:.0f} |"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
