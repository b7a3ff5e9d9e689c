"""Shared plumbing for the system adapters (stdlib + redis-py only, so it runs in the
peers' environment too).

An adapter is ``benchmarks/systems/<name>.py``, run as
``python benchmarks/systems/<name>.py FIGURE --redis-url URL --n N [--processes P]
[--routing-keys K] [--batch B]``; it prints exactly one JSON object on its last stdout
line (see ``emit``). Start an adapter with::

    import sys
    from pathlib import Path
    # The script's own folder would shadow the package it benchmarks (``rq.py`` vs ``rq``):
    # put the repository root in its place, then import this module by its full name.
    sys.path[0] = str(Path(__file__).resolve().parents[2])
    from benchmarks.systems import _common

Conventions every adapter follows, so the figures compare like with like:

* Every job's handler does one ``INCR`` on ``COUNTER_KEY``; completion is detected by
  polling that counter (``wait_for_count``).
* ``pickup`` jobs carry ``t = time.monotonic()`` taken just before the submit call; the
  handler's first statement reads ``time.monotonic()`` and, with the ``INCR``, pushes the
  difference in milliseconds on ``LATENCY_KEY`` (``pickup_record`` builds both commands).
  ``CLOCK_MONOTONIC`` is one clock for every process on the machine.
* Worker processes are started with ``start_worker`` (own process group) and always
  stopped with ``stop_worker`` (SIGTERM to the group, then SIGKILL).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

COUNTER_KEY = "bench:counter"
LATENCY_KEY = "bench:latency"

FIGURES = ("submit", "submit_async", "bulk", "drain", "pickup", "wait")
#: Default spacing and count of the pickup figure (the issue's 300 jobs, 20 ms apart).
PICKUP_JOBS = 300
PICKUP_GAP = 0.020
#: Jobs submitted (and waited for) before a pickup measurement starts, to warm up.
PICKUP_WARMUP = 10
#: How often the counter is read while waiting (seconds).
POLL_INTERVAL = 0.002
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# -- arguments and output -----------------------------------------------------------------


def parser(system: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"benchmarks/systems/{system}.py")
    p.add_argument("figure", choices=FIGURES)
    p.add_argument("--redis-url", required=True)
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--routing-keys", type=int, default=1)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--pickup-jobs", type=int, default=PICKUP_JOBS)
    p.add_argument("--timeout", type=float, default=None, help="seconds before the adapter gives up")
    return p


def default_timeout(args: argparse.Namespace) -> float:
    """A bound on one run: generous enough for the slowest peer at N jobs."""
    if args.timeout:
        return float(args.timeout)
    return 60.0 + args.n / 40.0


def result(
    system: str, args: argparse.Namespace, seconds: float | None, count: int | None = None, **extra: Any
) -> dict[str, Any]:
    """The contract's JSON object; ``rate`` = ``count`` (default N) / ``seconds``."""
    count = args.n if count is None else count
    rate = (count / seconds) if seconds and seconds > 0 else None
    out: dict[str, Any] = {"system": system, "figure": args.figure, "n": args.n, "seconds": seconds, "rate": rate}
    out.update(extra)
    return out


def unsupported(system: str, args: argparse.Namespace, reason: str) -> dict[str, Any]:
    return {"system": system, "figure": args.figure, "n": args.n, "seconds": None, "rate": None,
            "unsupported": True, "reason": reason}  # fmt: skip


def failed(system: str, args: argparse.Namespace, error: str, **extra: Any) -> dict[str, Any]:
    return {"system": system, "figure": args.figure, "n": args.n, "seconds": None, "rate": None,
            "error": error, **extra}  # fmt: skip


def emit(obj: dict[str, Any]) -> None:
    """Print the one JSON result line (the harness reads the last stdout line)."""
    sys.stdout.flush()
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def main(system: str, figures: dict[str, Callable[[argparse.Namespace], dict[str, Any]]]) -> None:
    """Parse arguments, run one figure, print its JSON; an exception becomes an error result."""
    args = parser(system).parse_args()
    func = figures.get(args.figure)
    if func is None:
        emit(unsupported(system, args, f"{system} has no {args.figure} figure"))
        return
    try:
        obj = func(args)
    except Exception as exc:  # reported, not raised: the harness always gets a line
        import traceback

        traceback.print_exc()
        obj = failed(system, args, f"{type(exc).__name__}: {exc}")
    emit(obj)


# -- Redis helpers ------------------------------------------------------------------------


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def reset_counters(r: redis.Redis) -> None:
    r.delete(COUNTER_KEY, LATENCY_KEY)


def count(r: redis.Redis) -> int:
    value = r.get(COUNTER_KEY)
    return int(value) if value is not None else 0


def wait_for_count(
    r: redis.Redis,
    target: int,
    deadline: float,
    *,
    interval: float = POLL_INTERVAL,
    samples: list[tuple[float, int]] | None = None,
    alive: Callable[[], bool] | None = None,
) -> tuple[bool, float]:
    """Poll ``COUNTER_KEY`` until it reaches ``target`` or ``deadline`` (monotonic) passes.

    Returns (reached, monotonic time it was seen). ``samples`` collects (time, count);
    ``alive`` (e.g. "the worker has not exited") is checked now and then.
    """
    checks = 0
    while True:
        value = count(r)
        now = time.monotonic()
        if samples is not None:
            samples.append((now, value))
        if value >= target:
            return True, now
        if now > deadline:
            return False, now
        checks += 1
        if alive is not None and checks % 100 == 0 and not alive():
            return False, now
        time.sleep(interval)


def steady_rate(samples: Sequence[tuple[float, int]], n: int, low: float = 0.1, high: float = 0.9) -> float | None:
    """Jobs/s over the middle of the run: from the first sample at >= low*n completions to
    the first at >= high*n (start-up and tail excluded)."""
    lo_target, hi_target = low * n, high * n
    t_lo = c_lo = t_hi = c_hi = None
    for t, c in samples:
        if t_lo is None and c >= lo_target:
            t_lo, c_lo = t, c
        if c >= hi_target:
            t_hi, c_hi = t, c
            break
    if t_lo is None or t_hi is None or c_lo is None or c_hi is None or t_hi <= t_lo:
        return None
    return (c_hi - c_lo) / (t_hi - t_lo)


def first_completion(samples: Sequence[tuple[float, int]]) -> float | None:
    for t, c in samples:
        if c > 0:
            return t
    return None


def pickup_latency_ms(t_submit: float) -> float:
    """Milliseconds since ``t_submit`` (a ``time.monotonic()`` from the submitting process)."""
    return (time.monotonic() - t_submit) * 1000.0


def percentiles(values_ms: Sequence[float]) -> dict[str, float | None]:
    if not values_ms:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    ordered = sorted(values_ms)

    def pct(p: float) -> float:
        # nearest-rank percentile
        k = max(0, min(len(ordered) - 1, round(p / 100.0 * len(ordered) + 0.5) - 1))
        return ordered[k]

    return {
        "p50_ms": statistics.median(ordered),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": ordered[-1],
        "mean_ms": statistics.fmean(ordered),
    }


def read_latencies(r: redis.Redis) -> list[float]:
    return [float(v) for v in r.lrange(LATENCY_KEY, 0, -1)]


# -- figure drivers shared by adapters ------------------------------------------------------


def timed_calls(n: int, call: Callable[[int], Any]) -> tuple[float, list[float]]:
    """Run ``call(i)`` for i in 0..n-1 one at a time; (total seconds, per-call ms)."""
    lat: list[float] = []
    append = lat.append
    clock = time.perf_counter
    start = clock()
    for i in range(n):
        t = clock()
        call(i)
        append((clock() - t) * 1000.0)
    return clock() - start, lat


def call_stats(lat_ms: Sequence[float]) -> dict[str, float | None]:
    stats = percentiles(lat_ms)
    return {f"call_{k}": v for k, v in stats.items() if k in ("p50_ms", "p99_ms", "max_ms")}


def run_pickup(
    r: redis.Redis,
    submit: Callable[[float], Any],
    *,
    jobs: int,
    deadline: float,
    gap: float = PICKUP_GAP,
    warmup: int = PICKUP_WARMUP,
    alive: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """The pickup figure against an idle, already started worker.

    ``submit(t)`` submits one pickup job carrying ``t``. Warm-up jobs (until the worker
    answers, then ``warmup`` more) are not measured. Jobs go out ``gap`` seconds apart on
    a fixed schedule, one at a time.
    """
    # Wait for the worker to be up: the first job runs once it is.
    base = count(r)
    submit(time.monotonic())
    ok, _ = wait_for_count(r, base + 1, deadline, alive=alive)
    if not ok:
        raise RuntimeError("worker did not start processing pickup jobs")
    for _ in range(warmup):
        before = count(r)
        submit(time.monotonic())
        wait_for_count(r, before + 1, deadline, alive=alive)
        time.sleep(gap)
    time.sleep(0.2)
    r.delete(LATENCY_KEY)
    start_count = count(r)
    next_at = time.monotonic()
    t0 = next_at
    for _ in range(jobs):
        now = time.monotonic()
        if now < next_at:
            time.sleep(next_at - now)
        submit(time.monotonic())
        next_at += gap
    ok, t_end = wait_for_count(r, start_count + jobs, deadline, alive=alive)
    lat = read_latencies(r)
    out: dict[str, Any] = {"jobs": jobs, "gap_ms": gap * 1000, "seconds": t_end - t0, "rate": None}
    out.update(percentiles(lat))
    out["measured"] = len(lat)
    if not ok:
        out["error"] = f"timeout: {count(r) - start_count}/{jobs} pickup jobs ran"
    return out


# -- worker processes -------------------------------------------------------------------------


def start_worker(
    argv: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None
) -> subprocess.Popen[bytes]:
    """Start a worker command in its own process group; its output goes to our stderr."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.Popen(
        list(argv),
        env=full_env,
        cwd=cwd or REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=sys.stderr.fileno(),
        stderr=sys.stderr.fileno(),
        start_new_session=True,
    )
    # The harness also kills, after each run, every process carrying its BENCH_RUN_ID in
    # its environment, so a worker survives neither a crashed nor a killed adapter.
    print(f"bench: started worker pid {proc.pid}: {' '.join(argv)}", file=sys.stderr, flush=True)
    return proc


def stop_worker(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> int | None:
    """SIGTERM the worker (the group leader, which stops its own children), then SIGKILL
    its whole process group: the leader if it is still there after ``grace``, and any
    child (e.g. a forked pool process) that outlived it."""
    if proc is None:
        return None
    try:
        pgid: int | None = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = None
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
    try:
        return proc.wait(5)
    except subprocess.TimeoutExpired:
        return None


def drain(
    r: redis.Redis,
    n: int,
    start: Callable[[], subprocess.Popen[bytes]],
    deadline: float,
) -> tuple[dict[str, Any], subprocess.Popen[bytes]]:
    """The drain figure once ``n`` jobs are queued: start the worker(s) and time them.

    Returns the measurements and the worker process (the caller stops it).
    """
    samples: list[tuple[float, int]] = []
    t0 = time.monotonic()
    proc = start()
    ok, t_end = wait_for_count(r, n, deadline, samples=samples, alive=lambda: proc.poll() is None)
    out: dict[str, Any] = {"seconds": t_end - t0, "rate": n / (t_end - t0) if ok else None}
    first = first_completion(samples)
    out["startup_s"] = (first - t0) if first is not None else None
    out["steady_rate"] = steady_rate(samples, n)
    out["completed"] = samples[-1][1] if samples else 0
    if not ok:
        why = "worker exited" if proc.poll() is not None else "timeout"
        out["error"] = f"{why}: {out['completed']}/{n} jobs done after {t_end - t0:.1f}s"
    return out, proc
