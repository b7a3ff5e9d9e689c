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

import orjson  # noqa: E402
import redis  # noqa: E402

from bananas import AsyncClient, Client, Priority  # noqa: E402
from bananas.core.clock import to_datetime  # noqa: E402
from bananas.core.job import new_job  # noqa: E402
from bananas.core.routing import QueueRef, strict_queue_order  # noqa: E402
from bananas.embedded import EmbeddedServer  # noqa: E402
from bananas.redis import connection, keys  # noqa: E402
from bananas.redis.broker import Broker  # noqa: E402
from benchmarks import machine, report  # noqa: E402
from benchmarks.systems import _common as c  # noqa: E402
from benchmarks.systems import bananas as adapter  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"

#: Jobs per dequeue call in the micro measurement (a worker asks for its free slots).
BATCH = 10
#: Jobs a worker drains in the macro measurement.
MACRO_JOBS = 5000


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


def raw_top_up(pipe: Any, count: int, routing_key: str, priority: Priority) -> None:
    """Queue ``count`` jobs with plain commands (no script), so the server's script
    statistics count only the dequeues being measured."""
    now = to_datetime(time.time())
    queue = keys.route_queue(routing_key, priority)
    for _ in range(count):
        job = new_job("noop", {}, priority, routing_key, now=now)
        pipe.set(keys.job(job.id), job.to_record())
        pipe.lpush(queue, job.id)


def evalsha_usec_per_call(r: redis.Redis) -> float | None:
    stats = r.info("commandstats")
    entry = stats.get("cmdstat_evalsha")
    return float(entry["usec_per_call"]) if entry else None


async def micro_dequeue(
    url: str, order: Sequence[QueueRef], routing_key: str, priority: Priority, calls: int
) -> dict[str, Any]:
    """Time ``calls`` dequeues of BATCH jobs each; each is preceded (untimed) by a top-up
    of BATCH jobs, so the depth the dequeue sees stays what the caller filled, and followed
    (untimed) by dropping the leases, so the lease set stays small as in a live worker."""
    client = connection.async_client(url)
    sync = redis.Redis.from_url(url)
    broker = Broker(client)
    await broker.load_scripts()
    timings: list[float] = []
    server_usec: float | None = None
    try:
        for i in range(calls + 20):
            if i == 20:  # after the warm-up
                sync.config_resetstat()
            pipe = client.pipeline(transaction=False)
            raw_top_up(pipe, BATCH, routing_key, priority)
            await pipe.execute()
            deadline_ms = int((time.time() + 30) * 1000)
            t = time.perf_counter()
            ids = await broker.dequeue(order, deadline_ms, f"bench:{i}", BATCH)
            dt = time.perf_counter() - t
            if len(ids) != BATCH:
                raise RuntimeError(f"dequeue returned {len(ids)} ids, expected {BATCH}")
            if i >= 20:
                timings.append(dt * 1e6)
            pipe = client.pipeline(transaction=False)
            pipe.zrem(keys.LEASES, *ids)
            pipe.hdel(keys.LEASE_OWNERS, *ids)
            pipe.delete(*(keys.job(x) for x in ids))
            await pipe.execute()
        server_usec = evalsha_usec_per_call(sync)
        t_ping = []
        for _ in range(200):
            t = time.perf_counter()
            await client.ping()
            t_ping.append((time.perf_counter() - t) * 1e6)
    finally:
        await client.aclose()
        sync.close()
    timings.sort()
    return {
        "calls": calls,
        "batch": BATCH,
        "call_us_p50": statistics.median(timings),
        "call_us_p90": timings[int(0.9 * (len(timings) - 1))],
        "job_us_p50": statistics.median(timings) / BATCH,
        "server_us_per_call": server_usec,
        "ping_us_p50": statistics.median(t_ping),
    }


def macro_drain(url: str, keys_list: list[str], jobs: int, timeout: float) -> dict[str, Any]:
    """A real worker (1 process) drains the first ``jobs`` of what is queued: rate between
    10% and 90% of them (start-up excluded)."""
    r = c.connect(url)
    c.reset_counters(r)
    proc = None
    samples: list[tuple[float, int]] = []
    try:
        proc = c.start_worker(adapter.worker_argv(1, keys_list), adapter.worker_env(url))
        alive = proc.poll
        ok, _ = c.wait_for_count(r, jobs, time.monotonic() + timeout, samples=samples,
                                 alive=lambda: alive() is None)  # fmt: skip
    finally:
        c.stop_worker(proc)
        r.close()
    return {"jobs": jobs, "steady_rate": c.steady_rate(samples, jobs), "ok": ok}


# -- sections ------------------------------------------------------------------------------


def section_depth(depths: Sequence[int], calls: int, macro: bool) -> list[dict[str, Any]]:
    rows = []
    order = strict_queue_order(["default"], (Priority.HIGH, Priority.NORMAL, Priority.LOW))
    for depth in depths:
        with fresh_server() as server:
            fill_s = fill(server.url, depth)
            row: dict[str, Any] = {"depth": depth, "fill_s": fill_s, "fill_rate": depth / fill_s if fill_s else None}
            row.update(asyncio.run(micro_dequeue(server.url, order, "default", Priority.NORMAL, calls)))
            if macro:
                fill(server.url, MACRO_JOBS)  # ... behind the ``depth`` already queued ...
                # ... but a list is FIFO: the worker takes the oldest first, so it drains
                # MACRO_JOBS of the depth+MACRO_JOBS queued, leaving ``depth`` behind.
                row["macro"] = macro_drain(server.url, ["default"], MACRO_JOBS, 120)
            rows.append(row)
            print(f"scaling: depth {depth:,}: {summary_line(row)}", file=sys.stderr, flush=True)
    return rows


def section_keys(counts: Sequence[int], calls: int, macro: bool) -> list[dict[str, Any]]:
    rows = []
    for k in counts:
        names = [f"rk{i}" for i in range(k)]
        order = strict_queue_order(names, (Priority.HIGH, Priority.NORMAL, Priority.LOW))
        last = names[-1]
        with fresh_server() as server:
            row: dict[str, Any] = {"routing_keys": k, "queues_scanned": len(order)}
            # Jobs on the last key at the last priority: every other queue is looked at first.
            row.update(asyncio.run(micro_dequeue(server.url, order, last, Priority.LOW, calls)))
            if macro:
                fill(server.url, MACRO_JOBS, routing_key=last, priority=Priority.LOW)
                row["macro"] = macro_drain(server.url, names, MACRO_JOBS, 120)
            rows.append(row)
            print(f"scaling: {k} routing key(s): {summary_line(row)}", file=sys.stderr, flush=True)
    return rows


def summary_line(row: dict[str, Any]) -> str:
    text = f"dequeue p50 {row['call_us_p50']:.0f} µs/call ({row['server_us_per_call']} µs in the server)"
    if "macro" in row:
        rate = row["macro"]["steady_rate"]
        text += f", worker {rate:,.0f} jobs/s" if rate else ", worker: no rate"
    return text


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
    if data.get("depth"):
        rows = []
        for row in data["depth"]:
            macro = row.get("macro", {}).get("steady_rate")
            rows.append([f"{row['depth']:,}", f"{row['call_us_p50']:.0f}", f"{row['call_us_p90']:.0f}",
                         f"{row['server_us_per_call']:.1f}" if row["server_us_per_call"] else "–",
                         f"{row['ping_us_p50']:.0f}",
                         f"{macro:,.0f}" if macro else "–"])  # fmt: skip
        parts.append(
            f"#### Dequeue cost against queue depth\n\nOne dequeue call takes {BATCH} jobs (pop + lease, one script), "
            "the depth held constant by an untimed top-up before each call; server µs from `INFO commandstats`. "
            f"Worker column: steady rate of one worker process draining the oldest {MACRO_JOBS:,} jobs "
            "with the rest still queued behind them.\n\n"
            + report.table(["jobs queued", "call p50 µs", "call p90 µs", "server µs/call", "PING p50 µs",
                            "worker jobs/s"], rows)  # fmt: skip
        )
        calls = [row["call_us_p50"] for row in data["depth"]]
        server = [row["server_us_per_call"] for row in data["depth"] if row["server_us_per_call"]]
        flat = _flatness(calls)
        status.append([
            f"dequeue cost flat within 20% from {data['depth'][0]['depth']:,} to {data['depth'][-1]['depth']:,} queued",
            f"max/min {flat:.2f} round trip, {_flatness(server):.2f} server side",
            "met" if flat <= 1.2 else "not met",
        ])  # fmt: skip
    if data.get("keys"):
        rows = []
        for row in data["keys"]:
            macro = row.get("macro", {}).get("steady_rate")
            rows.append([str(row["routing_keys"]), str(row["queues_scanned"]), f"{row['call_us_p50']:.0f}",
                         f"{row['call_us_p90']:.0f}",
                         f"{row['server_us_per_call']:.1f}" if row["server_us_per_call"] else "–",
                         f"{macro:,.0f}" if macro else "–"])  # fmt: skip
        parts.append(
            "#### Dequeue cost against routing keys per worker\n\nJobs on the last routing key at the lowest "
            "priority, so every other queue of the worker is looked at first (the worst case).\n\n"
            + report.table(["routing keys", "queues scanned", "call p50 µs", "call p90 µs", "server µs/call",
                            "worker jobs/s"], rows)  # fmt: skip
        )
        calls = [row["call_us_p50"] for row in data["keys"]]
        server = [row["server_us_per_call"] for row in data["keys"] if row["server_us_per_call"]]
        flat = _flatness(calls)
        status.append([
            f"dequeue cost flat within 20% from {data['keys'][0]['routing_keys']} to "
            f"{data['keys'][-1]['routing_keys']} routing keys",
            f"max/min {flat:.2f} round trip, {_flatness(server):.2f} server side",
            "met" if flat <= 1.2 else "not met",
        ])  # fmt: skip
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
    p.add_argument("--calls", type=int, default=500, help="timed dequeue calls per point (default 500)")
    p.add_argument("--memory-jobs", type=int, default=100_000)
    p.add_argument("--rss-jobs", type=int, default=20_000)
    p.add_argument("--sections", default="depth,keys,memory,rss")
    p.add_argument("--no-macro", action="store_true", help="skip the worker-drain column")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs")
    p.add_argument("--out", default=None)
    p.add_argument("--label", default=None)
    p.add_argument("--note", default=None)
    p.add_argument("--update-docs", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.depths, args.keys, args.calls, args.memory_jobs, args.rss_jobs = "10,1000", "1,10", 50, 2000, 1000
    sections = {s.strip() for s in args.sections.split(",")}
    macro = not args.no_macro and not args.smoke
    meta = machine.describe({"bananas": sys.executable})
    meta.update({"started": datetime.now(UTC).isoformat(timespec="seconds"), "note": args.note, "smoke": args.smoke})
    with fresh_server() as server:
        meta["server"] = machine.server(server.url)
    data: dict[str, Any] = {"meta": meta}
    if "depth" in sections:
        data["depth"] = section_depth([int(x) for x in args.depths.split(",")], args.calls, macro)
    if "keys" in sections:
        data["keys"] = section_keys([int(x) for x in args.keys.split(",")], args.calls, macro)
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
