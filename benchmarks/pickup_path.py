"""Where an idle worker's pick-up spends its time, step by step (issue 15).

    python -m benchmarks.pickup_path [--jobs 300] [--gap 0.02]

The pick-up figure of ``benchmarks.run`` gives one number (submit called → handler
started). This splits it: a worker runs in this process (uvloop, concurrency 64, the
default routing key) with time stamps added around the steps of its pick-up path, and a
separate process submits ``--jobs`` jobs ``--gap`` seconds apart with the sync ``Client``,
each carrying ``time.monotonic()`` taken just before its submit call (one clock for both
processes on Linux). Printed: the median and the 90th percentile of each step, in ms, over
the jobs after the first 20, then the same as one JSON line. The stamps are taken by wrapping the worker's own methods
(instrumentation only: what they do is unchanged), so the total is a little above the
harness's figure.

Steps: submit called → the wake-up message is read by the worker's listener → the
fetch loop runs again → the dequeue call leaves → its reply is back (lease and record)
→ the job's task runs (``Processor.process``) → the executor is called (record parsed,
start recorded) → the handler starts.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bananas import Job, Registry
from bananas.config import WorkerSettings
from bananas.embedded import EmbeddedServer
from bananas.redis.broker import Broker
from bananas.worker.executor import Executor
from bananas.worker.fetcher import Fetcher
from bananas.worker.processor import Processor
from bananas.worker.service import Worker
from bananas.worker.wakeup import WakeupListener

SKIP = 20

SUBMITTER = """
import sys, time
from bananas import Client
with Client(sys.argv[1]) as client:
    for _ in range(int(sys.argv[2])):
        client.submit_job("pickup", {"t": time.monotonic()})
        time.sleep(float(sys.argv[3]))
"""

Stamps = dict[str, list[float]]


def _stamp_before(stamps: Stamps, name: str, owner: type, attr: str) -> None:
    """Record ``time.monotonic()`` each time ``owner.attr`` (a coroutine method) is entered."""
    original = getattr(owner, attr)

    async def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        stamps[name].append(time.monotonic())
        return await original(self, *args, **kwargs)

    setattr(owner, attr, wrapped)


def instrument(stamps: Stamps) -> None:
    heard = WakeupListener._heard

    def on_heard(self: WakeupListener, message: dict[str, Any]) -> None:
        stamps["heard"].append(time.monotonic())
        heard(self, message)

    WakeupListener._heard = on_heard  # type: ignore[method-assign]

    until: Callable[..., Awaitable[None]] = Worker._until

    async def woke(self: Worker, *args: Any) -> None:
        await until(self, *args)
        stamps["woke"].append(time.monotonic())

    Worker._until = woke  # type: ignore[method-assign,assignment]
    _stamp_before(stamps, "fetch", Fetcher, "fetch")
    dequeue = Broker.dequeue

    async def timed_dequeue(self: Broker, call: Any) -> Any:
        stamps["sent"].append(time.monotonic())
        reply = await dequeue(self, call)
        if reply[1]:
            stamps["reply"].append(time.monotonic())
        return reply

    Broker.dequeue = timed_dequeue  # type: ignore[method-assign]
    _stamp_before(stamps, "process", Processor, "process")
    _stamp_before(stamps, "execute", Executor, "call")


def _before(series: list[float], t: float) -> float:
    """The last stamp of ``series`` at or before ``t``."""
    return series[bisect.bisect_right(series, t) - 1]


def steps(stamps: Stamps) -> list[tuple[str, list[float]]]:
    n = len(stamps["start"])
    rows: list[list[float]] = []
    for i in range(SKIP, n):
        t0, start = stamps["t0"][i], stamps["start"][i]
        reply = stamps["reply"][-n + i]
        sent = _before(stamps["sent"], reply)
        fetch = _before(stamps["fetch"], sent)
        woke = _before(stamps["woke"], fetch)
        heard = _before(stamps["heard"], woke)
        process = stamps["process"][-n + i]
        execute = stamps["execute"][-n + i]
        points = [t0, heard, woke, fetch, sent, reply, process, execute, start]
        rows.append([(b - a) * 1000 for a, b in itertools.pairwise(points)] + [(start - t0) * 1000])
    names = [
        "submit called -> wake-up message read",
        "message -> fetch loop runs again",
        "fetch loop -> fetch called",
        "fetch called -> dequeue sent",
        "dequeue round trip",
        "reply -> the job's task runs",
        "task -> executor called",
        "executor -> handler starts",
        "total",
    ]
    return list(zip(names, (list(col) for col in zip(*rows, strict=True)), strict=True))


async def measure(jobs: int, gap: float) -> list[tuple[str, list[float]]]:
    stamps: Stamps = {k: [] for k in ("heard", "woke", "fetch", "sent", "reply", "process", "execute", "start", "t0")}
    instrument(stamps)
    registry = Registry()

    @registry.handler("pickup")
    async def pickup(job: Job) -> None:
        stamps["start"].append(time.monotonic())
        stamps["t0"].append(job.payload["t"])

    with tempfile.TemporaryDirectory() as data, EmbeddedServer(data_dir=data) as server:
        settings = WorkerSettings.from_env({"REDIS_URL": server.url, "WORKER_CONCURRENCY": "64"})
        worker = Worker(registry, settings)
        running = asyncio.create_task(worker.run())
        await worker.wait_ready()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BANANAS_", "WORKER_")) and k != "REDIS_URL"}
        submitter = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SUBMITTER, server.url, str(jobs), str(gap), env=env
        )
        await submitter.wait()
        deadline = time.monotonic() + 10
        while len(stamps["start"]) < jobs and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        worker.stop()
        await running
    return steps(stamps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pickup_path", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between submits (default 0.02)")
    args = parser.parse_args(argv)
    if args.jobs <= SKIP:
        parser.error(f"--jobs must be more than {SKIP} (the first {SKIP} are a warm-up)")
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        rows = asyncio.run(measure(args.jobs, args.gap))
    else:
        rows = uvloop.run(measure(args.jobs, args.gap))
    print(f"{'step (ms)':40s} {'p50':>7s} {'p90':>7s}")
    summary: dict[str, dict[str, float]] = {}
    for name, values in rows:
        values.sort()
        p50, p90 = statistics.median(values), values[int(len(values) * 0.9)]
        summary[name] = {"p50_ms": round(p50, 4), "p90_ms": round(p90, 4)}
        print(f"{name:40s} {p50:7.3f} {p90:7.3f}")
    print(json.dumps({"jobs": args.jobs, "gap_s": args.gap, "measured": args.jobs - SKIP, "steps": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
