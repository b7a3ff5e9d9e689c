"""Cost of reading the fleet (``bananas queues``, ``workers``, ``running``) at scale.

    python -m benchmarks.queue_stats                  # 1,000 routing keys, 1,000,000 queued jobs
    python -m benchmarks.queue_stats --keys 20 --jobs 2000   # seconds (smoke)

Fills a fresh embedded server with ``--jobs`` real jobs (``submit_many``) spread over
``--keys`` routing keys and the three priorities, a parked list on every tenth key,
``--workers`` worker entries and ``--in-flight`` leased jobs, then times
``Client.queue_stats()`` (median of ``--repeat`` reads), counts its round trips, and
times ``workers()`` and ``running()``. Prints one JSON object on its last line and writes
it to benchmarks/results/queue-stats.json (unless --no-save).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import redis

from bananas import Client
from bananas.core.fleet import beat_fields, worker_hash
from bananas.embedded import EmbeddedServer
from bananas.redis import keys

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "queue-stats.json"
PRIORITIES = ("high", "normal", "low")


def fill(client: Client, n_keys: int, n_jobs: int) -> float:
    """Queue ``n_jobs`` jobs over ``n_keys`` routing keys (submit_many, one key and
    priority per call group); seconds taken."""
    start = time.perf_counter()
    per_key = n_jobs // n_keys
    batch: list[tuple[str, str, int]] = []
    for k in range(n_keys):
        count = per_key + (1 if k < n_jobs - per_key * n_keys else 0)
        for p, prio in enumerate(PRIORITIES):
            share = count // 3 + (1 if p < count % 3 else 0)
            if share:
                batch.append((f"rk{k:04d}", prio, share))
    for key, prio, share in batch:
        client.submit_many("bench", [None] * share, prio, routing_key=key)
    return time.perf_counter() - start


def decorate(r: redis.Redis, n_keys: int, n_workers: int, in_flight: int) -> None:
    """Parked lists, worker entries and leases, as a busy fleet has them."""
    pipe = r.pipeline(transaction=False)
    for k in range(0, n_keys, 10):
        key = f"rk{k:04d}"
        job_id = r.lindex(keys.route_queue(key, "normal"), -1)
        if job_id is None:
            continue
        pipe.lrem(keys.route_queue(key, "normal"), 1, job_id)
        pipe.lpush(keys.parked_queue(key, "normal", "transcode"), job_id)
        pipe.sadd(keys.parked_index(key), keys.parked_member("normal", "transcode"))
    now = time.time()
    for w in range(n_workers):
        worker_id = f"bench-host:{1000 + w}:{w:08x}"
        routes = [f"rk{k:04d}" for k in range(w % 10, n_keys, 10)][:100]
        info = worker_hash(host="bench-host", pid=1000 + w, routing_keys=routes, priorities=PRIORITIES,
                           queue_selection="strict", concurrency=10, started_at=now, version="bench",
                           mode="default", handlers=["bench"], lease_seconds=30.0)  # fmt: skip
        pipe.zadd(keys.WORKERS, {worker_id: now})
        pipe.hset(keys.worker_info(worker_id), mapping={**info, **beat_fields(now, 0, 0, 0)})
        pipe.expire(keys.worker_info(worker_id), 3600)
    pipe.execute()
    # In flight: the next jobs of the first keys, leased to the workers.
    leased = 0
    for k in range(n_keys):
        if leased >= in_flight:
            break
        ids = r.rpop(keys.route_queue(f"rk{k:04d}", "high"), min(10, in_flight - leased)) or []
        for i, job_id in enumerate(ids):
            r.zadd(keys.LEASES, {job_id: int((now + 30) * 1000)})
            r.hset(keys.LEASE_OWNERS, job_id, f"bench-host:{1000 + i % max(1, n_workers)}:{i:08x}:1")
        leased += len(ids)


def timed(fn: Any, repeat: int) -> tuple[float, float, Any]:
    times = []
    value = None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), value


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--in-flight", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bananas-queue-stats-") as data, EmbeddedServer(data) as server:
        r = redis.Redis.from_url(server.url)
        with Client(server.url) as client:
            fill_s = fill(client, args.keys, args.jobs)
            decorate(r, args.keys, args.workers, args.in_flight)
            memory = int(r.info("memory")["used_memory"])
            round_trips = 0
            send = client._send_batch

            def counting(batch: Any) -> list[Any]:
                nonlocal round_trips
                round_trips += 1
                return send(batch)

            client._send_batch = counting  # type: ignore[method-assign]
            client.queue_stats()  # warm: scripts, connections
            round_trips = 0
            median, best, stats = timed(client.queue_stats, args.repeat)
            trips = round_trips // args.repeat
            workers_s, _, found = timed(client.workers, args.repeat)
            running_s, _, flying = timed(client.running, args.repeat)
            document = json.dumps(stats.to_json())
        r.close()
    result = {
        "routing_keys": args.keys,
        "queued_jobs": args.jobs,
        "workers": len(found),
        "in_flight": len(flying),
        "parked_lists": len(stats.parked),
        "fill_seconds": round(fill_s, 1),
        "redis_used_memory_mb": round(memory / 2**20, 1),
        "queue_stats_median_ms": round(median * 1000, 1),
        "queue_stats_min_ms": round(best * 1000, 1),
        "queue_stats_round_trips": trips,
        "queues_json_bytes": len(document),
        "workers_median_ms": round(workers_s * 1000, 1),
        "running_median_ms": round(running_s * 1000, 1),
        "ready_total": sum(rt.ready for rt in stats.routes),
        "orphaned_routes": sum(1 for rt in stats.routes if rt.orphaned),
    }
    if not args.no_save:
        RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
