"""Bananas adapter for the benchmark harness (see benchmarks/systems/_common.py).

Configuration (documented in docs/PERFORMANCE.md): async handlers, worker
``--concurrency`` 64 per process (``BENCH_BANANAS_CONCURRENCY`` overrides), uvloop,
hiredis and orjson as installed with Bananas; producers use the public ``Client``,
``AsyncClient`` and ``submit_many``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # The script's folder would shadow the ``bananas`` package with this file.
    sys.path[0] = str(Path(__file__).resolve().parents[2])

import argparse
import asyncio
import os
import time
from typing import Any

from bananas import AsyncClient, Client, Priority
from benchmarks.systems import _common as c

SYSTEM = "bananas"
APP = "benchmarks.systems._bananas_app:registry"
CONCURRENCY = int(os.environ.get("BENCH_BANANAS_CONCURRENCY", "64"))
HANDLER = os.environ.get("BENCH_BANANAS_HANDLER", "noop")
#: ``none`` (default) or ``noop``: one event listener that does nothing (see _bananas_app.py).
LISTENER = os.environ.get("BENCH_BANANAS_LISTENER", "none")


def routing_keys(k: int) -> list[str]:
    return ["default"] if k <= 1 else [f"rk{i}" for i in range(k)]


def worker_argv(processes: int, keys: list[str], concurrency: int = CONCURRENCY) -> list[str]:
    return [
        sys.executable, "-m", "bananas", "worker", APP,
        "--processes", str(processes),
        "--concurrency", str(concurrency),
        "--routing-keys", ",".join(keys),
        "--log-level", "WARNING",
    ]  # fmt: skip


def worker_env(url: str) -> dict[str, str]:
    # Keep a caller's PYTHONPATH (e.g. a scratch copy of src/ to compare against).
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), c.REPO_ROOT) if p)
    env = {"REDIS_URL": url, "BENCH_REDIS_URL": url, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
    return {**env, "BENCH_BANANAS_LISTENER": LISTENER}


def fill(url: str, n: int, name: str = "noop", routing_key: str = "default", batch: int = 10_000) -> None:
    """Queue ``n`` jobs fast (submit_many, several batches of 1,000 per round trip)."""
    with Client(url) as client:
        for start in range(0, n, batch):
            size = min(batch, n - start)
            client.submit_many(name, [{"i": start + j} for j in range(size)], routing_key=routing_key)


# -- figures -------------------------------------------------------------------------------


def fig_submit(args: argparse.Namespace) -> dict[str, Any]:
    with Client(args.redis_url) as client:
        for i in range(min(200, args.n)):  # warm-up: connection, script load
            client.submit_job("noop", {"i": -i})
        submit = client.submit_job
        normal = Priority.NORMAL
        seconds, lat = c.timed_calls(args.n, lambda i: submit("noop", {"i": i}, normal))
    return c.result(SYSTEM, args, seconds, **c.call_stats(lat))


def fig_submit_async(args: argparse.Namespace) -> dict[str, Any]:
    async def run() -> tuple[float, list[float]]:
        async with AsyncClient(args.redis_url) as client:
            for i in range(min(200, args.n)):
                await client.submit_job("noop", {"i": -i})
            lat: list[float] = []
            clock = time.perf_counter
            start = clock()
            for i in range(args.n):
                t = clock()
                await client.submit_job("noop", {"i": i})
                lat.append((clock() - t) * 1000.0)
            return clock() - start, lat

    _fast_loop()
    seconds, lat = asyncio.run(run())
    return c.result(SYSTEM, args, seconds, loop=_loop_name(), **c.call_stats(lat))


def fig_bulk(args: argparse.Namespace) -> dict[str, Any]:
    batch = args.batch
    with Client(args.redis_url) as client:
        client.submit_many("noop", [{"i": -1}] * min(batch, 100))  # warm-up
        payloads = [{"i": i} for i in range(args.n)]
        start = time.perf_counter()
        for lo in range(0, args.n, batch):
            client.submit_many("noop", payloads[lo : lo + batch])
        seconds = time.perf_counter() - start
    return c.result(SYSTEM, args, seconds, batch=batch)


def fig_drain(args: argparse.Namespace) -> dict[str, Any]:
    deadline = time.monotonic() + c.default_timeout(args)
    r = c.connect(args.redis_url)
    c.reset_counters(r)
    fill(args.redis_url, args.n, HANDLER)
    env = worker_env(args.redis_url)
    argv = worker_argv(args.processes, ["default"])
    proc = None
    try:
        out, proc = c.drain(r, args.n, lambda: c.start_worker(argv, env), deadline)
    finally:
        c.stop_worker(proc)
    return {**c.result(SYSTEM, args, None), **out, "processes": args.processes, "concurrency": CONCURRENCY,
            "handler": HANDLER, "listener": LISTENER}  # fmt: skip


def fig_pickup(args: argparse.Namespace) -> dict[str, Any]:
    deadline = time.monotonic() + c.default_timeout(args)
    r = c.connect(args.redis_url)
    c.reset_counters(r)
    keys = routing_keys(args.routing_keys)
    target = keys[-1]  # jobs on the last key the worker listens on: the worst case
    proc = c.start_worker(worker_argv(1, keys), worker_env(args.redis_url))
    try:
        with Client(args.redis_url) as client:
            submit = client.submit_job

            def one(t: float) -> None:
                submit("pickup", {"t": t}, Priority.NORMAL, routing_key=target)

            out = c.run_pickup(r, one, jobs=args.pickup_jobs, deadline=deadline, alive=lambda: proc.poll() is None)
    finally:
        c.stop_worker(proc)
    return {**c.result(SYSTEM, args, None), **out, "routing_keys": len(keys)}


#: Sequential submit_and_wait calls are latency-bound (one job in flight): this many are
#: enough for a stable rate, and keep the figure's run time bounded at N=20,000.
WAIT_CALLS = 5000
#: Jobs in flight for the concurrent (AsyncClient) submit_and_wait measurement.
WAIT_IN_FLIGHT = 64


def fig_wait(args: argparse.Namespace) -> dict[str, Any]:
    if not hasattr(Client, "submit_and_wait"):
        return c.unsupported(SYSTEM, args, "Client has no submit_and_wait yet (results backend, issue 4)")
    deadline = time.monotonic() + c.default_timeout(args)
    calls = min(args.n, WAIT_CALLS)
    proc = c.start_worker(worker_argv(args.processes, ["default"]), worker_env(args.redis_url))
    try:
        with Client(args.redis_url) as client:
            wait = client.submit_and_wait
            for i in range(min(50, calls)):  # warm-up; the first waits for the worker to be up
                wait("noop", {"i": -i}, timeout=60)
            seconds, lat = c.timed_calls(calls, lambda i: wait("noop", {"i": i}, timeout=30))
        concurrent = _wait_concurrent(args.redis_url, args.n) if hasattr(AsyncClient, "submit_and_wait") else None
        if time.monotonic() > deadline:
            return c.failed(SYSTEM, args, "timeout")
    finally:
        c.stop_worker(proc)
    out = c.result(SYSTEM, args, seconds, count=calls, calls=calls, **c.call_stats(lat))
    if concurrent is not None:
        out.update(concurrent_rate=concurrent, concurrent_in_flight=WAIT_IN_FLIGHT)
    return out


def _wait_concurrent(url: str, n: int) -> float:
    """Jobs/s with WAIT_IN_FLIGHT AsyncClient.submit_and_wait calls in flight (one shared
    subscription), n jobs in all."""

    async def run() -> float:
        async with AsyncClient(url) as client:
            await client.submit_and_wait("noop", {"i": -1}, timeout=30)
            todo = iter(range(n))

            async def lane() -> None:
                for i in todo:
                    await client.submit_and_wait("noop", {"i": i}, timeout=60)

            start = time.perf_counter()
            await asyncio.gather(*(lane() for _ in range(WAIT_IN_FLIGHT)))
            return n / (time.perf_counter() - start)

    _fast_loop()
    return asyncio.run(run())


def _fast_loop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _loop_name() -> str:
    policy = type(asyncio.get_event_loop_policy()).__module__
    return "uvloop" if policy.startswith("uvloop") else "asyncio"


FIGURES = {
    "submit": fig_submit,
    "submit_async": fig_submit_async,
    "bulk": fig_bulk,
    "drain": fig_drain,
    "pickup": fig_pickup,
    "wait": fig_wait,
}

if __name__ == "__main__":
    c.main(SYSTEM, FIGURES)
