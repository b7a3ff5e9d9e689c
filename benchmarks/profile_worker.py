"""Where a draining worker's time goes: a py-spy profile of one real worker process
(``bananas worker``, 1 process) draining N no-op jobs, plus CPU time per job of the
worker and of the server, and the Redis commands per job.

    python -m benchmarks.profile_worker                 # N=20,000, py-spy
    python -m benchmarks.profile_worker --tool pyinstrument
    python -m benchmarks.profile_worker --update-docs   # paste the summary into docs/PERFORMANCE.md

py-spy samples from outside the process (no overhead on the worker); pyinstrument runs
the worker in-process under its profiler (slower, but needs no ptrace permission).
Needs the ``bench`` extra: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import redis

from bananas.embedded import EmbeddedServer
from benchmarks import machine, report, scaling
from benchmarks.systems import _common as c
from benchmarks.systems import bananas as adapter

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

#: Inclusive-time rows: (label, function-name pattern, file pattern); a frame matches when
#: its function (the last dotted part, e.g. ``_fetch`` of ``Worker._fetch``) and its file
#: (as py-spy prints it, e.g. ``bananas/worker/service.py``) both match.
INCLUSIVE = (
    ("fetching (dequeue, MGET, task creation)", r"_fetch|_start|fetch|records",
     r"bananas/worker/(service|fetcher)\.py"),
    ("Processor.process (one job, handler included)", r"process", r"bananas/worker/processor\.py"),
    ("Job.from_record (parse the record)", r"from_record", r"bananas/core/job\.py"),
    ("Job.to_record (encode the record)", r"to_record", r"bananas/core/job\.py"),
    ("clock.format_time / parse_time", r"format_time|parse_time", r"bananas/core/clock\.py"),
    ("lifecycle (mark_started, mark_completed)", r".*", r"bananas/core/lifecycle\.py"),
    ("Writer.run (batched state writes)", r"run", r"bananas/worker/writer\.py"),
    ("Executor.call (timeout wrapper + handler)", r"call", r"bananas/worker/executor\.py"),
    ("asyncio.wait_for (per-job timeout)", r"wait_for", r"asyncio/tasks\.py"),
    ("benchmark handler (one INCR)", r".*", r"benchmarks/systems/_bananas_app\.py"),
    ("redis-py (any frame)", r".*", r"^redis/"),
    ("redis-py: command packing/encoding", r"pack_command|pack_commands|encode", r"^redis/"),
    ("LeaseKeeper / Recoverer / Promoter", r".*", r"bananas/worker/(heartbeat|recoverer|promoter)\.py"),
    ("Reconciler (periodic bookkeeping check)", r".*", r"bananas/worker/reconciler\.py"),
)


def classify(file: str) -> str:
    f = file.replace("\\", "/")
    if f.startswith("benchmarks/"):
        return "benchmark handler"
    m = re.match(r"bananas/(worker|redis|core|client|results)/", f)
    if m:
        return f"bananas.{m.group(1)}"
    if f.startswith("bananas/"):
        return "bananas (other)"
    if f.startswith("redis/"):
        return "redis-py"
    if f.startswith("asyncio/") or "uvloop" in f:
        return "asyncio / uvloop"
    if "orjson" in f:
        return "orjson"
    if f.startswith(("concurrent/", "threading")):
        return "threads"
    if f.startswith("logging/"):
        return "logging"
    if f.startswith("<string>"):
        return "generated code (dataclass __init__)"
    return "other (stdlib, interpreter)"


def parse_raw(path: Path) -> list[tuple[list[str], int]]:
    stacks: list[tuple[list[str], int]] = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        frames, _, count = line.rpartition(" ")
        try:
            stacks.append((frames.split(";"), int(count)))
        except ValueError:
            continue
    return stacks


def split_frame(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame)
    return (m.group("func"), m.group("file")) if m else (frame, "")


def summarize_stacks(stacks: list[tuple[list[str], int]]) -> dict[str, Any]:
    total = sum(n for _, n in stacks) or 1
    by_area: collections.Counter[str] = collections.Counter()
    by_leaf: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    patterns = [(label, re.compile(f"^(?:{fp})$"), re.compile(pp)) for label, fp, pp in INCLUSIVE]
    for frames, n in stacks:
        split = [split_frame(fr) for fr in frames]
        func, file = split[-1]
        by_area[classify(file)] += n
        by_leaf[f"{func} ({file})"] += n
        for label, fpat, ppat in patterns:
            if any(fpat.match(fn.rsplit(".", 1)[-1]) and ppat.search(fl) for fn, fl in split):
                inclusive[label] += n
    return {
        "samples": total,
        "by_area": {k: v / total for k, v in by_area.most_common()},
        "top_self": [(k, v / total) for k, v in by_leaf.most_common(25)],
        "inclusive": {label: inclusive[label] / total for label, _, _ in INCLUSIVE},
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def commandstats(r: redis.Redis) -> dict[str, int]:
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in r.info("commandstats").items()}


def profile_pyspy(n: int, rate: int, out_dir: Path, label: str, sample: bool = True) -> dict[str, Any]:
    """``sample=False``: only CPU time per job and the server's time per operation."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if sample and not Path(pyspy).exists():
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    with tempfile.TemporaryDirectory(prefix="bananas-profile-") as data, EmbeddedServer(data) as server:
        r = redis.Redis.from_url(server.url)
        c.reset_counters(r)
        scaling.fill(server.url, n)
        r.config_resetstat()
        assert server.process is not None
        server_pid = server.process.pid
        proc = c.start_worker(adapter.worker_argv(1, ["default"]), adapter.worker_env(server.url))
        raw = out_dir / f"{label}.pyspy.txt"
        spy = None
        try:
            if not c.wait_for_count(r, 1, time.monotonic() + 60)[0]:
                raise RuntimeError("worker did not start")
            start_count = c.count(r)
            cpu_w0, cpu_s0, t0 = cpu_seconds(proc.pid), cpu_seconds(server_pid), time.monotonic()
            cmds0 = commandstats(r)
            scaling.start_command_log(r)
            spy = None if not sample else subprocess.Popen(
                [pyspy, "record", "--pid", str(proc.pid), "--rate", str(rate), "--nonblocking", "--idle",
                 "--format", "raw", "-o", str(raw)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            ok, t1 = c.wait_for_count(r, int(n * 0.95), time.monotonic() + 600)
            cpu_w1, cpu_s1 = cpu_seconds(proc.pid), cpu_seconds(server_pid)
            done = c.count(r) - start_count
            cmds1 = commandstats(r)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            server_ops = scaling.server_time_per_job(scaling.read_command_log(r), done)
        finally:
            if spy is not None and spy.poll() is None:
                spy.kill()
            c.stop_worker(proc)
            r.close()
    wall = t1 - t0
    stats = summarize_stacks(parse_raw(raw)) if sample else None
    # The poller's GETs and the profile's own INFO calls are not the worker's.
    per_job = {k: (cmds1.get(k, 0) - cmds0.get(k, 0)) / done for k in cmds1 if k not in ("get", "info")}
    return {
        "tool": "py-spy" if sample else "none",
        "jobs": done,
        "wall_s": wall,
        "rate": done / wall,
        "worker_cpu_us_per_job": (cpu_w1 - cpu_w0) / done * 1e6,
        "server_cpu_us_per_job": (cpu_s1 - cpu_s0) / done * 1e6,
        "worker_cpu_share": (cpu_w1 - cpu_w0) / wall,
        "server_cpu_share": (cpu_s1 - cpu_s0) / wall,
        "commands_per_job": {k: v for k, v in sorted(per_job.items(), key=lambda kv: -kv[1]) if v > 0.001},
        "server_us_per_job_by_op": server_ops,
        "profile": stats,
        "raw_file": raw.name,
        "ok": ok,
    }


def profile_pyinstrument(n: int, out_dir: Path, label: str) -> dict[str, Any]:
    from pyinstrument import Profiler

    from bananas.config import WorkerSettings
    from bananas.worker.service import Worker
    from benchmarks.systems._bananas_app import registry

    with tempfile.TemporaryDirectory(prefix="bananas-profile-") as data, EmbeddedServer(data) as server:
        os.environ["BENCH_REDIS_URL"] = server.url
        r = redis.Redis.from_url(server.url)
        c.reset_counters(r)
        scaling.fill(server.url, n)
        settings = WorkerSettings(redis_url=server.url, concurrency=adapter.CONCURRENCY)

        async def main() -> float:
            worker = Worker(registry, settings)
            task = asyncio.create_task(worker.run())
            while worker.processed < n and not task.done():
                await asyncio.sleep(0.01)
            t = time.monotonic()
            worker.stop()
            await task
            return t

        adapter._fast_loop()
        profiler = Profiler(interval=0.0005, async_mode="disabled")
        t0 = time.monotonic()
        profiler.start()
        t1 = asyncio.run(main())
        profiler.stop()
        r.close()
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    (out_dir / f"{label}.pyinstrument.txt").write_text(text)
    (out_dir / f"{label}.pyinstrument.html").write_text(profiler.output_html())
    flat = profiler.output_text(unicode=False, color=False, flat=True)
    return {"tool": "pyinstrument", "jobs": n, "wall_s": t1 - t0, "rate": n / (t1 - t0),
            "text_file": f"{label}.pyinstrument.txt", "flat_top": flat.splitlines()[:40]}  # fmt: skip


def render(data: dict[str, Any]) -> str:
    res = data["result"]
    meta = data["meta"]
    srv = meta.get("server") or {}
    head = (
        f"Profiled {meta.get('started')}: one worker process (concurrency {adapter.CONCURRENCY}, async no-op "
        f"handler) draining {res['jobs']:,} queued jobs, {srv.get('name', '')} {srv.get('version', '')} on "
        f"loopback, {meta.get('cores')} cores, load average {meta.get('loadavg_start')}; {res['tool']}."
        + (f" {meta['note']}" if meta.get("note") else "")
    )
    if res["tool"] == "pyinstrument":
        return head + "\n\n```\n" + "\n".join(res["flat_top"]) + "\n```\n"
    prof = res["profile"]
    parts = [head]
    rows = [
        ["drain rate while profiled", f"{res['rate']:,.0f} jobs/s"],
        ["worker CPU per job", f"{res['worker_cpu_us_per_job']:.0f} µs ({res['worker_cpu_share']:.0%} of a core)"],
        ["server CPU per job", f"{res['server_cpu_us_per_job']:.0f} µs ({res['server_cpu_share']:.0%} of a core)"],
        ["Redis commands per job (inside scripts included)",
         ", ".join(f"{k} {v:.2f}" for k, v in res["commands_per_job"].items() if v >= 0.005)],
        ["server µs per job, by operation (SLOWLOG)",
         ", ".join(f"{k} {v:.1f}" for k, v in res["server_us_per_job_by_op"].items() if v >= 0.05)],
    ]  # fmt: skip
    parts.append(report.table(["", ""], rows, align="ll"))
    if prof is None:
        return "\n\n".join(parts) + "\n"
    rows = [[area, f"{share:.1%}"] for area, share in prof["by_area"].items()]
    parts.append("Worker CPU samples by where the sampled (innermost) frame is:\n\n"
                 + report.table(["area", "share of samples"], rows))  # fmt: skip
    rows = [[label, f"{share:.1%}"] for label, share in prof["inclusive"].items()]
    parts.append("Inclusive share (samples with the function anywhere on the stack):\n\n"
                 + report.table(["function", "share of samples"], rows))  # fmt: skip
    rows = [[f"`{name}`", f"{share:.1%}"] for name, share in prof["top_self"][:15]]
    parts.append("Top self time:\n\n" + report.table(["function", "share of samples"], rows))
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_worker")
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--tool", choices=("py-spy", "pyinstrument", "none"), default="py-spy",
                   help="none: CPU per job and server time only, no sampling")  # fmt: skip
    p.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    p.add_argument("--out", default=None)
    p.add_argument("--label", default=None)
    p.add_argument("--note", default=None)
    p.add_argument("--update-docs", action="store_true")
    p.add_argument("--bananas-ref", default=None, help="measure src/ as of this git ref (e.g. HEAD)")
    args = p.parse_args(argv)
    if args.bananas_ref:
        machine.reexec_on_snapshot(args.bananas_ref, "benchmarks.profile_worker", argv)
    out_dir = Path(args.out) if args.out else RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    label = args.label or "profile-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    meta = machine.describe({"bananas": sys.executable})
    meta.update({"started": datetime.now(UTC).isoformat(timespec="seconds"), "note": args.note})
    with tempfile.TemporaryDirectory() as d, EmbeddedServer(d) as server:
        meta["server"] = machine.server(server.url)
    if args.tool in ("py-spy", "none"):
        result = profile_pyspy(args.n, args.rate, out_dir, label, sample=args.tool == "py-spy")
    else:
        result = profile_pyinstrument(args.n, out_dir, label)
    meta["loadavg_end"] = machine.loadavg()
    data = {"meta": meta, "result": result}
    (out_dir / f"{label}.json").write_text(json.dumps(data, indent=2) + "\n")
    markdown = render(data)
    (out_dir / f"{label}.md").write_text(markdown)
    print(markdown)
    if args.update_docs:
        report.update_docs("profile", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
