"""How fast the dashboard's overview answers at scale: 1,000 routing keys and 1,000,000
queued jobs (issue 11), measured over HTTP against the real app on a fresh embedded server.

    python -m benchmarks.dashboard                  # 1,000 keys x 1,000 jobs, 30 requests per endpoint
    python -m benchmarks.dashboard --smoke          # 20 keys x 50 jobs, 5 requests (seconds)
    python -m benchmarks.dashboard --update-docs    # also paste the table into docs/PERFORMANCE.md

The jobs are real (``submit_many``, spread over the three priorities); 20 live worker
entries are announced the way workers announce themselves (on routing keys of their
own, so nothing drains). Each endpoint is asked ``--requests`` times in a row after one
warm-up request; the table gives the median, p95 and max answer time as the client sees
it, and the size of the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import httpx
import redis
import uvicorn

from bananas import Client, Priority, Router
from bananas.core.fleet import worker_hash
from bananas.dashboard import DashboardSettings, create_app
from bananas.embedded import EmbeddedServer
from bananas.redis import connection
from bananas.redis.broker import Broker
from benchmarks import machine

RESULTS = Path(__file__).resolve().parent / "results"
DOC = Path(__file__).resolve().parent.parent / "docs" / "PERFORMANCE.md"
TOKEN = "benchmark-token"
BEGIN, END = "<!-- dashboard-benchmark:begin -->", "<!-- dashboard-benchmark:end -->"
ENDPOINTS = [
    ("overview (first page, 100 rows)", "/api/v1/overview?limit=100"),
    ("overview, routing keys with a problem", "/api/v1/overview?problems=true&limit=100"),
    ("overview, search 'key-09'", "/api/v1/overview?q=key-09"),
    ("queues (the whole `queues --json` document)", "/api/v1/queues"),
    ("workers (first page)", "/api/v1/workers"),
    ("dead letters (first page)", "/api/v1/dead"),
]


def fill(url: str, keys: int, per_key: int) -> float:
    start = time.perf_counter()
    priorities = list(Priority)
    with Client(url, router=Router()) as client:
        for k in range(keys):
            payloads = [{"i": i} for i in range(per_key)]
            client.submit_many("noop", payloads, priorities[k % 3], routing_key=f"key-{k:04d}")
    return time.perf_counter() - start


async def announce_workers(url: str, count: int) -> None:
    client = connection.async_client(url)
    broker = Broker(client)
    now = time.time()
    for w in range(count):
        info = worker_hash(
            host=f"host-{w % 5}", pid=1000 + w, routing_keys=[f"idle-{w}"], priorities=["high", "normal", "low"],
            queue_selection="strict", concurrency=10, started_at=now, version="bench", mode="default",
            handlers=["noop"], lease_seconds=30.0,
        )  # fmt: skip
        info.update({"running": "0", "processed": "0", "failed": "0", "heartbeat_at": f"{now:.3f}"})
        await broker.announce(f"bench-worker-{w}", now, info, ttl_ms=3_600_000)
    await client.aclose()


def serve(url: str) -> tuple[uvicorn.Server, threading.Thread, int]:
    app = create_app(Client(url, router=Router()), DashboardSettings(token=TOKEN))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread, sock.getsockname()[1]


def measure(base: str, path: str, requests: int) -> dict[str, Any]:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as http:
        warm = http.get(path)
        warm.raise_for_status()
        times = []
        for _ in range(requests):
            start = time.perf_counter()
            reply = http.get(path)
            times.append((time.perf_counter() - start) * 1000)
            reply.raise_for_status()
    times.sort()
    return {
        "path": path,
        "requests": requests,
        "median_ms": statistics.median(times),
        "p95_ms": times[min(len(times) - 1, int(len(times) * 0.95))],
        "max_ms": times[-1],
        "bytes": len(warm.content),
    }


def render(data: dict[str, Any]) -> str:
    lines = [
        f"Overview at scale: {data['keys']:,} routing keys, {data['jobs']:,} queued jobs, "
        f"{data['workers']} live workers ({data['machine']}); {data['requests']} requests each after a warm-up, "
        f"over HTTP on loopback (`python -m benchmarks.dashboard`, {data['date']}).",
        "",
        "| endpoint | median | p95 | max | answer size |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in data["rows"]:
        lines.append(
            f"| {row['label']} (`{row['path']}`) | {row['median_ms']:.0f} ms | {row['p95_ms']:.0f} ms | "
            f"{row['max_ms']:.0f} ms | {row['bytes'] / 1024:,.0f} KiB |"
        )
    lines += ["", f"Filling the server took {data['fill_seconds']:.0f} s; Redis used {data['used_memory_mb']:,.0f} MB."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--jobs-per-key", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--update-docs", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.keys, args.jobs_per_key, args.requests = 20, 50, 5
    with tempfile.TemporaryDirectory(prefix="bananas-dashboard-bench-") as data_dir, EmbeddedServer(data_dir) as server:
        url = server.url
        print(f"filling {args.keys:,} routing keys x {args.jobs_per_key:,} jobs ...", flush=True)
        fill_seconds = fill(url, args.keys, args.jobs_per_key)
        asyncio.run(announce_workers(url, 20))
        used = redis.Redis.from_url(url).info("memory")["used_memory"] / 1e6
        http_server, thread, port = serve(url)
        try:
            rows = []
            for label, path in ENDPOINTS:
                row = {"label": label, **measure(f"http://127.0.0.1:{port}", path, args.requests)}
                print(f"{label}: median {row['median_ms']:.0f} ms, p95 {row['p95_ms']:.0f} ms", flush=True)
                rows.append(row)
        finally:
            http_server.should_exit = True
            thread.join(10)
    load = machine.loadavg()
    result = {
        "keys": args.keys,
        "jobs": args.keys * args.jobs_per_key,
        "workers": 20,
        "requests": args.requests,
        "fill_seconds": fill_seconds,
        "used_memory_mb": used,
        "rows": rows,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{machine.cpu_model()}, {os.cpu_count()} cores, load {load[0]:.1f}" if load else "",
    }
    table = render(result)
    print(table)
    if not args.smoke:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "dashboard-overview.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "dashboard-overview.md").write_text(table + "\n")
    if args.update_docs:
        text = DOC.read_text()
        block = f"{BEGIN}\n{table}\n{END}"
        if BEGIN in text:
            text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
        else:
            text = text.rstrip("\n") + "\n\n## The dashboard at scale\n\n" + block + "\n"
        DOC.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
