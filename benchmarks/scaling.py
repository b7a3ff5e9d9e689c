"""Scaling curves for Bananas: dequeue cost against queue depth and routing keys, Redis
memory per queued job, worker RSS.

    python -m benchmarks.scaling                 # full: depths 10/10k/1M, keys 1/10/100, 100k jobs
    python -m benchmarks.scaling --smoke         # small sizes, seconds (CI)
    python -m benchmarks.scaling --update-docs   # also paste the tables into docs/PERFORMANCE.md

Every section runs on its own fresh embedded server on a free loopback port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import orjson
import redis

from bananas import Client, Priority
from bananas.embedded import EmbeddedServer
from bananas.redis import keys
from bananas.redis.broker import Broker
from benchmarks import machine, report
from benchmarks.systems import _common as c
from benchmarks.systems import bananas as adapter

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"

#: Jobs the worker drains at each point of a curve.
DRAIN_JOBS = 5000


@contextlib.contextmanager
def fresh_server() -> Iterator[EmbeddedServer]:
    with tempfile.TemporaryDirectory(prefix="bananas-scaling-") as data, EmbeddedServer(data) as server:
        yield server


def fill(url: str, n: int, *, routing_key: str = "default", priority: Priority = Priority.NORMAL,
         payload: Any = None, chunk: int = 20_000) -> float:  # fmt: skip
    """Queue ``n`` real jobs with ``submit_many`` (batches of 1,000 per script call); seconds taken."""
    start = time.perf_counter()
    with Client(url) as client:
        for lo in range(0, n, chunk):
            size = min(chunk, n - lo)
            payloads = [payload if payload is not None else {"i": lo + j} for j in range(size)]
            client.submit_many("noop", payloads, priority, routing_key=routing_key)
    return time.perf_counter() - start


def script_names() -> dict[str, str]:
    """EVALSHA digest -> script name, for the scripts this Bananas has."""
    try:
        from bananas.redis.scripts import SCRIPTS
    except ImportError:
        return {}
    return {script.sha: str(name) for name, script in SCRIPTS.items()}


def start_command_log(r: redis.Redis) -> None:
    """Log every command with its execution time in the server (SLOWLOG, threshold 0)."""
    r.config_set("slowlog-log-slower-than", 0)
    r.config_set("slowlog-max-len", 1_000_000)
    r.slowlog_reset()


def read_command_log(r: redis.Redis) -> list[tuple[str, int]]:
    """(operation, µs in the server) per logged command: scripts by name, others by command."""
    names = script_names()
    out = []
    for entry in r.slowlog_get(-1):
        words = entry["command"].split(b" ", 2)
        op = words[0].decode().lower()
        if op == "evalsha" and len(words) > 1:
            op = "script " + names.get(words[1].decode(), words[1].decode()[:8])
        out.append((op, int(entry["duration"])))
    r.config_set("slowlog-log-slower-than", 10_000)
    r.slowlog_reset()
    return out


def server_time_per_job(log: list[tuple[str, int]], jobs: int) -> dict[str, float]:
    """Server µs per job by operation (the benchmark's own polling and bookkeeping excluded)."""
    totals: dict[str, int] = {}
    for op, us in log:
        if op in ("get", "slowlog", "config", "info", "ping", "client", "hello"):
            continue
        totals[op] = totals.get(op, 0) + us
    return {op: us / jobs for op, us in sorted(totals.items(), key=lambda kv: -kv[1])}


def _taken(reply: Any) -> int:
    """Jobs handed out by one ``Broker.dequeue`` reply (a list of ids, or (wait, ids[, dropped]))."""
    if isinstance(reply, tuple) and len(reply) in (2, 3) and isinstance(reply[1], list):
        return len(reply[1])
    if isinstance(reply, list):
        return len(reply)
    return 0


async def worker_drain(url: str, routing_keys: Sequence[str], jobs: int, timeout: float) -> dict[str, Any]:
    """One in-process worker (the real ``Worker``, async no-op handler) drains ``jobs`` of
    what is queued. Every ``Broker.dequeue`` call it makes is timed (round trip included);
    the rate is taken between 10% and 90% of the jobs."""
    from bananas.config import WorkerSettings
    from bananas.worker.service import Worker
    from benchmarks.systems import _bananas_app

    os.environ["BENCH_REDIS_URL"] = url
    _bananas_app._async_client = None  # bound to a previous event loop, if any
    calls: list[tuple[float, int]] = []
    original = getattr(Broker, "dequeue", None)

    async def timed(self: Broker, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        reply = await original(self, *args, **kwargs)  # type: ignore[misc]
        calls.append((time.perf_counter() - t, _taken(reply)))
        return reply

    if original is not None:
        Broker.dequeue = timed  # type: ignore[method-assign]
    samples: list[tuple[float, int]] = []
    r = redis.Redis.from_url(url)
    start_command_log(r)
    try:
        settings = WorkerSettings(redis_url=url, routing_keys=tuple(routing_keys), concurrency=adapter.CONCURRENCY)
        worker = Worker(_bananas_app.registry, settings)
        task = asyncio.create_task(worker.run())
        deadline = time.monotonic() + timeout
        while worker.processed < jobs and not task.done() and time.monotonic() < deadline:
            samples.append((time.monotonic(), worker.processed))
            await asyncio.sleep(0.005)
        samples.append((time.monotonic(), worker.processed))
        worker.stop()
        await asyncio.wait_for(task, 60)
        log = read_command_log(r)
    finally:
        r.close()
        if original is not None:
            Broker.dequeue = original  # type: ignore[method-assign]
        client = _bananas_app._async_client
        if client is not None:
            await client.aclose()
        _bananas_app._async_client = None
        os.environ.pop("BENCH_REDIS_URL", None)
    busy = sorted((dt * 1e6, n) for dt, n in calls if n > 0)
    per_call = [us for us, _ in busy]
    taken = sum(n for _, n in busy)
    dequeues = sorted(us for op, us in log if op == "script dequeue")
    processed = samples[-1][1]
    return {
        "server_us_per_job": server_time_per_job(log, processed) if processed else {},
        "dequeue_server_us_p50": statistics.median(dequeues) if dequeues else None,
        "dequeue_server_us_per_job": sum(dequeues) / taken if taken and dequeues else None,
        "jobs": jobs,
        "processed": processed,
        "steady_rate": c.steady_rate(samples, jobs),
        "dequeue_calls": len(busy),
        "jobs_per_call": taken / len(busy) if busy else None,
        "call_us_p50": statistics.median(per_call) if per_call else None,
        "call_us_p90": per_call[int(0.9 * (len(per_call) - 1))] if per_call else None,
        "job_us": sum(per_call) / taken if taken else None,
    }


# -- sections ------------------------------------------------------------------------------


def section_depth(depths: Sequence[int], jobs: int) -> list[dict[str, Any]]:
    rows = []
    for depth in depths:
        with fresh_server() as server:
            # FIFO: the worker takes the oldest first, so it drains ``jobs`` and leaves
            # ``depth`` queued behind them the whole time.
            fill_s = fill(server.url, depth + jobs)
            row: dict[str, Any] = {"depth": depth, "fill_rate": (depth + jobs) / fill_s if fill_s else None}
            row.update(asyncio.run(worker_drain(server.url, ["default"], jobs, 300)))
            rows.append(row)
            print(f"scaling: depth {depth:,}: {summary_line(row)}", file=sys.stderr, flush=True)
    return rows


def section_keys(counts: Sequence[int], jobs: int) -> list[dict[str, Any]]:
    rows = []
    for k in counts:
        names = [f"rk{i}" for i in range(k)]
        with fresh_server() as server:
            # Jobs on the last key at the lowest priority: every other queue comes first.
            fill(server.url, jobs, routing_key=names[-1], priority=Priority.LOW)
            row: dict[str, Any] = {"routing_keys": k, "queues": 3 * k}
            row.update(asyncio.run(worker_drain(server.url, names, jobs, 300)))
            rows.append(row)
            print(f"scaling: {k} routing key(s): {summary_line(row)}", file=sys.stderr, flush=True)
    return rows


def summary_line(row: dict[str, Any]) -> str:
    rate = row.get("steady_rate")
    return (
        f"dequeue {row.get('jobs_per_call') or 0:.1f} jobs/call, server {_us(row.get('dequeue_server_us_p50'))} µs/call"
        f" = {_f1(row.get('dequeue_server_us_per_job'))} µs/job, round trip {_us(row.get('call_us_p50'))} µs; "
        f"worker {rate or 0:,.0f} jobs/s"
    )


def _us(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def _f1(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def section_memory(n: int) -> dict[str, Any]:
    with fresh_server() as server:
        r = redis.Redis.from_url(server.url)
        try:
            # One job first, so one-off structures (routing-key set, script cache) are not counted.
            with Client(server.url) as client:
                client.submit_many("noop", [{}])
            before = int(r.info("memory")["used_memory"])
            fill(server.url, n, payload={})
            after = int(r.info("memory")["used_memory"])
            queue = keys.route_queue("default", Priority.NORMAL)
            ids = [x.decode() for x in r.lrange(queue, 0, 999)]
            record_usage = [int(r.memory_usage(keys.job(i), samples=0) or 0) for i in ids]
            record_len = [int(r.strlen(keys.job(i))) for i in ids]
            list_usage = int(r.memory_usage(queue, samples=0) or 0)
            depth = int(r.llen(queue))
            sample = r.get(keys.job(ids[0]))
        finally:
            r.close()
    payload_bytes = len(orjson.dumps({}))
    per_job = (after - before) / n
    return {
        "jobs": n,
        "payload": "{}",
        "payload_bytes": payload_bytes,
        "record_bytes": statistics.median(record_len),
        "record_memory_usage": statistics.median(record_usage),
        "list_bytes_per_job": list_usage / depth,
        "used_memory_delta_per_job": per_job,
        "beyond_payload": per_job - payload_bytes,
        "sample_record": sample.decode() if sample else None,
    }


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def section_rss(n: int) -> dict[str, Any]:
    with fresh_server() as server:
        r = c.connect(server.url)
        c.reset_counters(r)
        proc = c.start_worker(adapter.worker_argv(1, ["default"]), adapter.worker_env(server.url))
        try:
            fill(server.url, 1)
            if not c.wait_for_count(r, 1, time.monotonic() + 30)[0]:
                raise RuntimeError("worker did not start")
            time.sleep(1.0)
            idle = rss_kib(proc.pid)
            samples: list[int] = []
            with Client(server.url) as client:
                for lo in range(0, n, 1000):
                    client.submit_many("noop", [{"i": i} for i in range(lo, min(n, lo + 1000))])
                    value = rss_kib(proc.pid)
                    if value:
                        samples.append(value)
            deadline = time.monotonic() + 300
            while c.count(r) < n + 1 and time.monotonic() < deadline:
                value = rss_kib(proc.pid)
                if value:
                    samples.append(value)
                time.sleep(0.02)
            time.sleep(2.0)
            after = rss_kib(proc.pid)
        finally:
            c.stop_worker(proc)
            r.close()
    return {
        "jobs": n,
        "concurrency": adapter.CONCURRENCY,
        "idle_kib": idle,
        "load_max_kib": max(samples) if samples else None,
        "load_median_kib": statistics.median(samples) if samples else None,
        "idle_after_kib": after,
    }


# -- report ------------------------------------------------------------------------------------


def _flatness(values: Sequence[float]) -> float:
    return max(values) / min(values) if values and min(values) > 0 else float("nan")


def render(data: dict[str, Any]) -> str:
    parts = []
    meta = data["meta"]
    srv = meta.get("server") or {}
    parts.append(
        f"Measured {meta.get('started')} on {meta.get('cores')} cores ({meta.get('cpu')}), "
        f"{srv.get('name', '')} {srv.get('version', '')} on loopback, load average {meta.get('loadavg_start')}."
        + (f" {meta['note']}" if meta.get("note") else "")
    )
    status: list[list[str]] = []
    headers = ["jobs per call", "server µs per call", "server µs per job", "round trip µs per call",
               "worker jobs/s (steady)"]  # fmt: skip

    def cells(row: dict[str, Any]) -> list[str]:
        per_call = row.get("jobs_per_call")
        rate = row.get("steady_rate")
        return ["–" if per_call is None else f"{per_call:.1f}", _us(row.get("dequeue_server_us_p50")),
                _f1(row.get("dequeue_server_us_per_job")), _us(row.get("call_us_p50")),
                "–" if rate is None else f"{rate:,.0f}"]  # fmt: skip

    def flatness(rows: list[dict[str, Any]], what: str) -> list[str]:
        per_job = [r["dequeue_server_us_per_job"] for r in rows if r.get("dequeue_server_us_per_job")]
        rates = [r["steady_rate"] for r in rows if r.get("steady_rate")]
        flat = _flatness(per_job)
        return [what, f"server µs per dequeued job max/min {flat:.2f}; worker rate max/min {_flatness(rates):.2f}",
                "met" if flat <= 1.2 else "not met"]  # fmt: skip

    method = (
        f"One worker (the real `Worker`, in-process, concurrency {adapter.CONCURRENCY}, async no-op handler) drains "
        f"{data.get('drain_jobs', DRAIN_JOBS):,} jobs. Its dequeue is one script call that pops and leases up to its "
        "free slots; the server's own execution time of every such call comes from `SLOWLOG` (threshold 0), so "
        "the machine's other load barely touches it. Medians; the round trip (measured in the worker, includes "
        "waiting for its busy event loop) is shown for reference."
    )
    if data.get("depth"):
        rows = [[f"{row['depth']:,}", *cells(row)] for row in data["depth"]]
        parts.append(
            "#### Dequeue cost against queue depth\n\n" + method + " The jobs queued stay queued behind the ones "
            "drained (FIFO) the whole time.\n\n" + report.table(["jobs queued behind", *headers], rows)
        )
        status.append(flatness(data["depth"], f"dequeue cost flat within 20% from {data['depth'][0]['depth']:,} to "
                                              f"{data['depth'][-1]['depth']:,} queued"))  # fmt: skip
    if data.get("keys"):
        rows = [[str(row["routing_keys"]), str(row["queues"]), *cells(row)] for row in data["keys"]]
        parts.append(
            "#### Dequeue cost against routing keys per worker\n\n" + method + " All jobs are on the worker's last "
            "routing key at the lowest priority, so every other queue is looked at first (the worst case).\n\n"
            + report.table(["routing keys", "queues", *headers], rows)
        )
        status.append(flatness(data["keys"], f"dequeue cost flat within 20% from {data['keys'][0]['routing_keys']} "
                                             f"to {data['keys'][-1]['routing_keys']} routing keys"))  # fmt: skip
    mem = data.get("memory")
    if mem:
        rows = [
            ["payload (`{}`)", f"{mem['payload_bytes']}"],
            ["job record (JSON string)", f"{mem['record_bytes']:.0f}"],
            ["`MEMORY USAGE` of a record key", f"{mem['record_memory_usage']:.0f}"],
            ["ready list, per queued id (`MEMORY USAGE` ÷ length)", f"{mem['list_bytes_per_job']:.1f}"],
            [f"`used_memory` delta per job over {mem['jobs']:,} jobs", f"{mem['used_memory_delta_per_job']:.0f}"],
            ["… of which beyond the payload", f"{mem['beyond_payload']:.0f}"],
        ]
        parts.append(
            "#### Redis memory per queued no-op job (bytes)\n\n" + report.table(["what", "bytes"], rows)
            + f"\n\nA queued record as stored:\n\n```json\n{mem['sample_record']}\n```"
        )
        status.append([
            "memory per queued no-op job ≤ 300 bytes beyond its payload",
            f"{mem['beyond_payload']:.0f} bytes",
            "met" if mem["beyond_payload"] <= 300 else "not met",
        ])  # fmt: skip
    rss = data.get("rss")
    if rss:
        rows = [
            ["idle (after one job)", f"{rss['idle_kib'] / 1024:.1f}"],
            [f"under load (draining {rss['jobs']:,} jobs), median", f"{rss['load_median_kib'] / 1024:.1f}"],
            ["under load, max", f"{rss['load_max_kib'] / 1024:.1f}"],
            ["idle again, 2 s after the load", f"{rss['idle_after_kib'] / 1024:.1f}"],
        ]
        parts.append(
            f"#### Worker RSS (1 process, concurrency {rss['concurrency']})\n\n"
            + report.table(["when", "RSS MiB"], rows)
        )
    if status:
        parts.append("#### Scaling targets (issue 5)\n\n" + report.table(["target", "measured", "status"], status,
                                                                           align="lll"))  # fmt: skip
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scaling")
    p.add_argument("--depths", default="10,10000,1000000")
    p.add_argument("--keys", default="1,10,100")
    p.add_argument("--drain-jobs", type=int, default=DRAIN_JOBS, help="jobs drained per point (default 5,000)")
    p.add_argument("--memory-jobs", type=int, default=100_000)
    p.add_argument("--rss-jobs", type=int, default=20_000)
    p.add_argument("--sections", default="depth,keys,memory,rss")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs")
    p.add_argument("--out", default=None)
    p.add_argument("--label", default=None)
    p.add_argument("--note", default=None)
    p.add_argument("--update-docs", action="store_true")
    p.add_argument("--bananas-ref", default=None, help="measure src/ as of this git ref (e.g. HEAD)")
    args = p.parse_args(argv)
    if args.bananas_ref:
        machine.reexec_on_snapshot(args.bananas_ref, "benchmarks.scaling", argv)
    if args.smoke:
        args.depths, args.keys, args.drain_jobs, args.memory_jobs, args.rss_jobs = "10,1000", "1,10", 500, 2000, 1000
    sections = {s.strip() for s in args.sections.split(",")}
    meta = machine.describe({"bananas": sys.executable})
    meta.update({"started": datetime.now(UTC).isoformat(timespec="seconds"), "note": args.note, "smoke": args.smoke})
    with fresh_server() as server:
        meta["server"] = machine.server(server.url)
    data: dict[str, Any] = {"meta": meta, "drain_jobs": args.drain_jobs}
    if "depth" in sections:
        data["depth"] = section_depth([int(x) for x in args.depths.split(",")], args.drain_jobs)
    if "keys" in sections:
        data["keys"] = section_keys([int(x) for x in args.keys.split(",")], args.drain_jobs)
    if "memory" in sections:
        data["memory"] = section_memory(args.memory_jobs)
        print(f"scaling: memory: {data['memory']['used_memory_delta_per_job']:.0f} bytes/job", file=sys.stderr)
    if "rss" in sections:
        data["rss"] = section_rss(args.rss_jobs)
        print(f"scaling: rss: {data['rss']}", file=sys.stderr)
    meta["loadavg_end"] = machine.loadavg()
    out_dir = Path(args.out) if args.out else RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    label = args.label or "scaling-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + ("-smoke" if args.smoke else "")
    (out_dir / f"{label}.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    markdown = render(data)
    (out_dir / f"{label}.md").write_text(markdown)
    print(markdown)
    if args.update_docs:
        report.update_docs("scaling", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
