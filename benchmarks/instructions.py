"""Instructions per job of a draining worker, counted by callgrind (issue 15).

    python -m benchmarks.instructions [--n 5000] [--idle 4] [--concurrency 64]

Wall-clock rates on a shared machine move with its load; an instruction count does not,
so a change to the worker is judged by this figure. How it counts:

1. A fresh embedded server (not measured) and one worker process (``--processes 1``,
   uvloop, logs at WARNING) started under ``valgrind --tool=callgrind``; handler
   ``nothing`` (``benchmarks/systems/_bananas_app.py``): an ``async def`` that returns
   ``None``, so the count is Bananas' own work, not the handler's.
2. Warm-up: 200 jobs submitted and drained (imports, scripts loaded, code paths warm).
3. Idle window: counters zeroed (``callgrind_control -z``), ``--idle`` seconds of an idle
   worker, counters dumped (``callgrind_control -d``): the instructions per second the
   worker spends with nothing to do (heartbeats, wake-up wait, throughput flushes).
4. Drain window: counters zeroed, N jobs queued with ``submit_many`` (by this process,
   not counted), drained, counters dumped once the worker's throughput counter says all
   N ended.
5. Per job = (drain instructions - idle rate x drain seconds) / N.

The start-up and shutdown of the process fall outside both windows. Prints one JSON line
(and a summary); ``--out FILE`` also writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bananas import Client
from bananas.embedded import EmbeddedServer
from bananas.redis import keys

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
APP = "benchmarks.systems._bananas_app:registry"
VALGRIND = "/usr/bin/valgrind"
CONTROL = "/usr/bin/callgrind_control"


def _ended(r: redis.Redis) -> int:
    """Jobs the worker reported ended (its throughput counter, flushed every 5 s)."""
    total = 0
    for key in r.scan_iter(match=keys.throughput(0).rsplit(":", 1)[0] + ":*"):
        total += sum(int(v) for v in r.hvals(key))
    return total


def _wait_ended(r: redis.Redis, target: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _ended(r) < target:
        if proc.poll() is not None:
            raise SystemExit(f"worker exited with {proc.returncode} before {target} jobs ended")
        if time.monotonic() > deadline:
            raise SystemExit(f"only {_ended(r)} of {target} jobs ended within {timeout:.0f} s")
        time.sleep(0.2)


def _control(flag: str, pid: int) -> None:
    subprocess.run([CONTROL, flag, str(pid)], check=True, capture_output=True, timeout=120)


def _dumped(out_dir: Path, seen: set[Path], timeout: float = 60.0) -> int:
    """Total instructions of the newest callgrind dump not read before."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(out_dir.glob("cg.out.*")):
            if path in seen:
                continue
            text = path.read_text(errors="replace")
            match = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
            if match:
                seen.add(path)
                return int(match.group(1))
        time.sleep(0.2)
    raise SystemExit("callgrind wrote no dump")


def measure(n: int, idle: float, concurrency: int) -> dict[str, Any]:
    commit = _commit()  # before the run: what the worker imported
    with tempfile.TemporaryDirectory(prefix="bananas-instr-") as tmp:
        tmpdir = Path(tmp)
        server = EmbeddedServer(tmpdir / "data")
        server.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "JOB_", "BANANAS_", "REDIS_URL"))}
        env.update(REDIS_URL=server.url, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p))
        argv = [
            VALGRIND, "--tool=callgrind", f"--callgrind-out-file={tmpdir}/cg.out", "--trace-children=no",
            sys.executable, "-m", "bananas", "worker", APP, "--processes", "1",
            "--concurrency", str(concurrency), "--routing-keys", "default", "--log-level", "WARNING",
        ]  # fmt: skip
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
        seen: set[Path] = set()
        try:
            r = redis.Redis.from_url(server.url)
            with Client(server.url) as client:
                client.submit_many("nothing", [{"i": -i} for i in range(200)])
                _wait_ended(r, 200, proc, timeout=600)
                _control("-z", proc.pid)
                t0 = time.monotonic()
                time.sleep(idle)
                _control("-d", proc.pid)
                idle_seconds = time.monotonic() - t0
                idle_instr = _dumped(tmpdir, seen)
                payloads = [{"i": i} for i in range(n)]
                _control("-z", proc.pid)
                t0 = time.monotonic()
                for lo in range(0, n, 1000):
                    client.submit_many("nothing", payloads[lo : lo + 1000])
                _wait_ended(r, 200 + n, proc, timeout=60 + n / 5)
                _control("-d", proc.pid)
                drain_seconds = time.monotonic() - t0
                drain_instr = _dumped(tmpdir, seen)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
            server.stop()
    idle_rate = idle_instr / idle_seconds
    per_job = (drain_instr - idle_rate * drain_seconds) / n
    return {
        "n": n, "concurrency": concurrency, "handler": "nothing", "tool": "callgrind",
        "drain_instructions": drain_instr, "drain_seconds": round(drain_seconds, 2),
        "idle_instructions_per_second": round(idle_rate), "instructions_per_job": round(per_job),
        "instructions_per_job_raw": round(drain_instr / n),
        "commit": commit,
    }  # fmt: skip


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="jobs in the drain window (default 5000)")
    parser.add_argument("--idle", type=float, default=4.0, help="seconds of the idle window (default 4)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be at least 1")
    result = measure(args.n, args.idle, args.concurrency)
    line = json.dumps(result)
    if args.out:
        args.out.write_text(line + "\n")
    print(
        f"{result['instructions_per_job']:,} instructions per job (commit {result['commit']}; "
        f"{result['n']:,} jobs, {result['drain_instructions']:,} in the drain window of {result['drain_seconds']} s, "
        f"idle {result['idle_instructions_per_second']:,}/s subtracted)",
        file=sys.stderr,
    )
    print(line)


if __name__ == "__main__":
    main()
