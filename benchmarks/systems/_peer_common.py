"""Shared machinery for the peer adapters (RQ, arq, Dramatiq, SAQ, taskiq, Celery, Huey).

Each adapter ``benchmarks/systems/<peer>.py`` defines its task(s) and a ``Peer`` class;
this module runs the four figures the same way for every peer and prints exactly one
JSON object on the last stdout line.  It never imports bananas.

Adapters are run as scripts, but their file names shadow the peer's own package
(``rq.py`` vs ``rq``).  So the script entry point strips its own directory from
``sys.path`` and loads itself again as ``benchmarks.systems.<peer>`` (repository root on
``sys.path``), which is also the module path the peer's worker CLI imports.  The tasks
therefore have the same importable name on the producer side and in the workers.

Completion is detected by polling the counter ``bench:done`` that every job's handler
increments once; a pickup job also pushes ``"<index> <time.monotonic() at start>"`` to
``bench:starts`` (one pipelined round trip with the INCR); CLOCK_MONOTONIC is one clock
for every process on the machine.  Method (polling, warm-up, percentiles, steady rate)
follows the conventions of ``benchmarks/systems/_common.py`` so the Bananas adapter and
the peers are measured alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

COUNTER_KEY = "bench:done"
STARTS_KEY = "bench:starts"
URL_ENV = "BENCH_REDIS_URL"
VARIANT_ENV = "BENCH_VARIANT"
PROCESSES_ENV = "BENCH_PROCESSES"

FIGURES = ("submit", "submit_async", "bulk", "drain", "pickup", "wait")
BULK_BATCH = 1_000
PICKUP_JOBS = 300
PICKUP_INTERVAL_S = 0.020
PICKUP_WARMUP = 10
POLL_INTERVAL_S = 0.002
STOP_GRACE_S = 5.0


# --------------------------------------------------------------------------- handlers
# Called by every peer's task function inside the worker processes.

_sync_client: redis.Redis | None = None
_async_clients: dict[int, Any] = {}


def _url() -> str:
    return os.environ[URL_ENV]


def env_url() -> str:
    """The server URL for module-level apps/brokers (a dead placeholder when only --help runs)."""
    return os.environ.get(URL_ENV, "redis://127.0.0.1:1/0")


def env_variant(default: str) -> str:
    return os.environ.get(VARIANT_ENV) or default


def env_processes() -> int:
    return int(os.environ.get(PROCESSES_ENV) or 1)


def sync_client() -> redis.Redis:
    """One client (with its pool) per worker process; redis-py resets the pool after a fork."""
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(_url())
    return _sync_client


def handle_sync(i: int | None = None) -> None:
    """The no-op job: one INCR; a pickup job (``i`` given) also records its start time."""
    if i is None:
        sync_client().incr(COUNTER_KEY)
        return
    started = time.monotonic()
    pipe = sync_client().pipeline(transaction=False)
    pipe.rpush(STARTS_KEY, f"{i} {started!r}")
    pipe.incr(COUNTER_KEY)
    pipe.execute()


def async_client() -> Any:
    """One asyncio client per event loop (a worker process normally has exactly one)."""
    import redis.asyncio as aredis

    loop = asyncio.get_running_loop()
    client = _async_clients.get(id(loop))
    if client is None:
        client = aredis.Redis.from_url(_url())
        _async_clients[id(loop)] = client
    return client


async def handle_async(i: int | None = None) -> None:
    if i is None:
        await async_client().incr(COUNTER_KEY)
        return
    started = time.monotonic()
    pipe = async_client().pipeline(transaction=False)
    pipe.rpush(STARTS_KEY, f"{i} {started!r}")
    pipe.incr(COUNTER_KEY)
    await pipe.execute()


# --------------------------------------------------------------------------- peer interface


@dataclass
class WorkerSpec:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


class Unsupported(Exception):
    """The peer has no API for this figure (e.g. no bulk enqueue)."""


class BenchError(Exception):
    pass


class PeerBase:
    """What an adapter provides.  ``client`` is "sync" or "async"."""

    name = "peer"
    variants: tuple[str, ...] = ("default",)
    client = "sync"
    bulk_api: str | None = None  # name of the bulk API used, None if the peer has none
    bulk_note: str | None = None

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.variant: str = args.variant
        self.processes: int = args.processes

    @property
    def system(self) -> str:
        return self.name if len(self.variants) == 1 else f"{self.name}-{self.variant}"

    # sync producers
    def open(self) -> None: ...
    def close(self) -> None: ...
    def submit(self, i: int | None) -> None:
        raise NotImplementedError

    def submit_bulk(self, count: int) -> None:
        raise Unsupported(f"{self.name} has no bulk enqueue")

    # async producers
    async def aopen(self) -> None: ...
    async def aclose(self) -> None: ...
    async def asubmit(self, i: int | None) -> None:
        raise NotImplementedError

    async def asubmit_bulk(self, count: int) -> None:
        raise Unsupported(f"{self.name} has no bulk enqueue")

    # workers
    def worker_specs(self) -> list[WorkerSpec]:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Worker/client configuration, reported in the JSON for the record."""
        return {}

    def packages(self) -> tuple[str, ...]:
        return (self.name,)


def bin_path(script: str) -> str:
    """A console script of the venv this interpreter runs in."""
    path = os.path.join(os.path.dirname(sys.executable), script)
    if not os.path.exists(path):
        found = shutil.which(script)
        if found is None:
            raise BenchError(f"console script {script!r} not found next to {sys.executable}")
        return found
    return path


# --------------------------------------------------------------------------- worker processes


class Workers:
    """Worker subprocesses, each in its own session so the whole tree can be signalled."""

    def __init__(self, logdir: str) -> None:
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[str] = []
        self._lock = threading.Lock()

    def start(self, specs: Sequence[WorkerSpec], base_env: dict[str, str]) -> None:
        for k, spec in enumerate(specs):
            log_path = os.path.join(self.logdir, f"worker-{k}.log")
            env = {**os.environ, **base_env, **spec.env}
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    spec.argv,
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            with self._lock:
                self.procs.append(proc)
                self.logs.append(log_path)

    def all_exited(self) -> bool:
        return bool(self.procs) and all(p.poll() is not None for p in self.procs)

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM to every process group, then SIGKILL whatever is left after ``grace``."""
        with self._lock:
            procs = list(self.procs)
        for p in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.0, deadline - time.monotonic()))
        for p in procs:
            # the group may outlive its leader (pool children): always sweep it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(2.0)

    def log_tail(self, chars: int = 1500) -> str:
        parts = []
        for path in self.logs:
            try:
                with open(path, "rb") as f:
                    data = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            parts.append(f"[{os.path.basename(path)}] {data[-chars:]}")
        return "\n".join(parts)


# --------------------------------------------------------------------------- measurement helpers


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (p50 is reported as the median), as in ``_common.percentiles``."""
    k = max(0, min(len(sorted_values) - 1, round(q / 100.0 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[k])


def crossing_time(samples: Sequence[tuple[float, int]], target: float) -> float | None:
    """Time at which the polled counter reached ``target``, interpolated between samples."""
    prev_t, prev_c = 0.0, 0
    for t, c in samples:
        if c >= target:
            if c == prev_c:
                return t
            return prev_t + (target - prev_c) / (c - prev_c) * (t - prev_t)
        prev_t, prev_c = t, c
    return None


def versions(packages: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pkg in (*packages, "redis", "hiredis"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[pkg] = importlib.metadata.version(pkg)
    out["python"] = platform.python_version()
    return out


# --------------------------------------------------------------------------- the run


class Run:
    def __init__(self, peer: PeerBase, args: argparse.Namespace) -> None:
        self.peer = peer
        self.args = args
        self.r = redis.Redis.from_url(args.redis_url)
        self.logdir = tempfile.mkdtemp(prefix=f"bench-{peer.name}-")
        self.workers = Workers(self.logdir)
        self.deadline = time.monotonic() + args.timeout
        self.loop: asyncio.AbstractEventLoop | None = None
        self.result: dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers
    def check_deadline(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise BenchError(f"timed out after {self.args.timeout:.0f}s while {what}")

    def counter(self) -> int:
        v = self.r.get(COUNTER_KEY)
        return int(v) if v is not None else 0

    def aio(self, coro: Any) -> Any:
        assert self.loop is not None
        return self.loop.run_until_complete(coro)

    def worker_env(self) -> dict[str, str]:
        return {
            URL_ENV: self.args.redis_url,
            VARIANT_ENV: self.peer.variant,
            PROCESSES_ENV: str(self.peer.processes),
            "PYTHONPATH": ROOT,
            "PYTHONUNBUFFERED": "1",
        }

    def start_workers(self) -> None:
        self.workers.start(self.peer.worker_specs(), self.worker_env())

    def wait_counter(
        self,
        target: int,
        what: str,
        samples: list[tuple[float, int]] | None = None,
        t0: float = 0.0,
        interval: float = POLL_INTERVAL_S,
    ) -> float:
        """Poll until the counter reaches ``target``; returns perf_counter() at that sample."""
        checks = 0
        while True:
            c = self.counter()
            now = time.perf_counter()
            if samples is not None:
                samples.append((now - t0, c))
            if c >= target:
                return now
            checks += 1
            if checks % 50 == 0 and self.workers.all_exited():
                raise BenchError(f"all workers exited while {what} ({c}/{target} done)")
            self.check_deadline(f"{what} ({c}/{target} done)")
            time.sleep(interval)

    def submit_one(self, i: int | None) -> None:
        if self.peer.client == "async":
            self.aio(self.peer.asubmit(i))
        else:
            self.peer.submit(i)

    # ------------------------------------------------------------------ enqueue loops
    def submit_all(self, n: int) -> list[float]:
        """n submits one at a time through the peer's own client; per-call ms."""
        peer = self.peer
        lat: list[float] = []
        clock = time.perf_counter
        if peer.client == "async":

            async def go() -> None:
                for k in range(n):
                    t = clock()
                    await peer.asubmit(None)
                    lat.append((clock() - t) * 1000.0)
                    if k % 1000 == 999:
                        self.check_deadline("submitting")

            self.aio(go())
        else:
            for k in range(n):
                t = clock()
                peer.submit(None)
                lat.append((clock() - t) * 1000.0)
                if k % 1000 == 999:
                    self.check_deadline("submitting")
        return lat

    def bulk_all(self, n: int) -> None:
        peer = self.peer
        batches = [min(BULK_BATCH, n - k) for k in range(0, n, BULK_BATCH)]
        if peer.client == "async":

            async def go() -> None:
                for size in batches:
                    await peer.asubmit_bulk(size)
                    self.check_deadline("bulk submitting")

            self.aio(go())
        else:
            for size in batches:
                peer.submit_bulk(size)
                self.check_deadline("bulk submitting")

    def fill(self, n: int) -> str:
        """Enqueue n jobs as fast as the peer allows (not measured): bulk if it has one."""
        if self.peer.bulk_api is not None:
            self.bulk_all(n)
            return "bulk"
        if self.peer.client == "async":
            peer = self.peer

            async def go() -> None:
                for k in range(0, n, 100):
                    await asyncio.gather(*(peer.asubmit(None) for _ in range(min(100, n - k))))
                    self.check_deadline("filling the queue")

            self.aio(go())
            return "async client, 100 submits in flight"
        self.submit_all(n)
        return "one at a time"

    # ------------------------------------------------------------------ figures
    def _submit_figure(self) -> None:
        n = self.args.n
        t0 = time.perf_counter()
        lat = self.submit_all(n)
        dt = time.perf_counter() - t0
        lat.sort()
        self.result.update(seconds=dt, rate=n / dt, client=self.peer.client,
                           call_p50_ms=statistics.median(lat), call_p99_ms=percentile(lat, 99),
                           call_max_ms=lat[-1])  # fmt: skip
        if self.peer.client == "async":
            self.result["note"] = f"{self.peer.name} has only an asyncio client: awaited one call at a time"

    def fig_submit(self) -> None:
        self._submit_figure()

    def fig_submit_async(self) -> None:
        if self.peer.client != "async":
            raise Unsupported(f"{self.peer.name} has no asyncio client")
        self._submit_figure()

    def fig_bulk(self) -> None:
        n = self.args.n
        if self.peer.bulk_api is None:
            raise Unsupported(f"{self.peer.name} has no bulk enqueue")
        t0 = time.perf_counter()
        self.bulk_all(n)
        dt = time.perf_counter() - t0
        self.result.update(
            seconds=dt, rate=n / dt, batch=BULK_BATCH, bulk_api=self.peer.bulk_api, client=self.peer.client
        )
        if self.peer.bulk_note:
            self.result["bulk_note"] = self.peer.bulk_note

    def fig_wait(self) -> None:
        raise Unsupported("the wait figure (submit_and_wait) is measured for Bananas only")

    def fig_drain(self) -> None:
        n = self.args.n
        t_fill = time.perf_counter()
        how = self.fill(n)
        fill_s = time.perf_counter() - t_fill
        if self.counter() != 0:
            raise BenchError("counter is not 0 before the workers start (server not empty?)")
        samples: list[tuple[float, int]] = []
        self.result.update(processes=self.peer.processes, fill_seconds=fill_s, fill_method=how)
        t0 = time.perf_counter()
        self.start_workers()
        try:
            t_end = self.wait_counter(n, "draining", samples=samples, t0=t0)
        except BenchError:
            # keep what was measured: a slow peer still gets a (partial) rate
            if samples:
                t_last, done = samples[-1]
                self.result.update(
                    completed=done, partial_seconds=t_last, partial_rate=done / t_last if t_last > 0 else None
                )
            raise
        seconds = t_end - t0
        first = crossing_time(samples, 1)
        t10 = crossing_time(samples, 0.1 * n)
        t90 = crossing_time(samples, 0.9 * n)
        steady = (0.8 * n) / (t90 - t10) if t10 is not None and t90 is not None and t90 > t10 else None
        self.workers.stop()
        self.result.update(
            seconds=seconds,
            rate=n / seconds,
            steady_rate=steady,
            startup_s=first,
            after_first_rate=(n - 1) / (seconds - first) if first is not None and seconds > first else None,
            completed=samples[-1][1],
            executed_after_stop=self.counter(),
        )

    def fig_pickup(self) -> None:
        jobs = self.args.pickup_jobs or PICKUP_JOBS
        gap = PICKUP_INTERVAL_S
        self.result.update(processes=self.peer.processes, client=self.peer.client)
        t_start = time.perf_counter()
        self.start_workers()
        # warm up: the worker is up once it has run a job; then PICKUP_WARMUP more, one by one
        self.submit_one(None)
        self.wait_counter(1, "waiting for the worker to start", interval=0.005)
        self.result["worker_startup_s"] = time.perf_counter() - t_start
        for k in range(PICKUP_WARMUP):
            self.submit_one(None)
            self.wait_counter(k + 2, "warming up")
            time.sleep(gap)
        time.sleep(0.2)  # idle
        base = self.counter()
        submitted: list[float] = [0.0] * jobs
        t_begin = time.monotonic()

        if self.peer.client == "async":
            peer = self.peer

            async def go() -> None:
                next_at = time.monotonic()
                for i in range(jobs):
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    submitted[i] = time.monotonic()
                    await peer.asubmit(i)
                    next_at += gap

            self.aio(go())
        else:
            next_at = time.monotonic()
            for i in range(jobs):
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                submitted[i] = time.monotonic()
                self.peer.submit(i)
                next_at += gap
        self.wait_counter(base + jobs, "waiting for the pickup jobs")
        t_end = time.monotonic()
        started: dict[int, float] = {}
        for raw in self.r.lrange(STARTS_KEY, 0, -1):
            idx_s, ts_s = raw.decode().split()
            idx, ts = int(idx_s), float(ts_s)
            if idx not in started or ts < started[idx]:
                started[idx] = ts  # a job run twice counts from its first start
        missing = [i for i in range(jobs) if i not in started]
        if missing:
            raise BenchError(f"{len(missing)} pickup jobs never recorded a start")
        lat = sorted((started[i] - submitted[i]) * 1000.0 for i in range(jobs))
        self.workers.stop()
        self.result.update(
            seconds=t_end - t_begin,
            rate=None,
            jobs=jobs,
            gap_ms=gap * 1000,
            measured=len(lat),
            p50_ms=statistics.median(lat),
            p95_ms=percentile(lat, 95),
            p99_ms=percentile(lat, 99),
            max_ms=lat[-1],
            min_ms=lat[0],
            mean_ms=statistics.fmean(lat),
        )

    # ------------------------------------------------------------------ driver
    def execute(self) -> int:
        peer, args = self.peer, self.args
        self.result = {
            "system": peer.system,
            "figure": args.figure,
            "n": args.n,
            "seconds": None,
            "rate": None,
        }
        code = 0
        try:
            dbsize = self.r.dbsize()
            if dbsize and not args.flush:
                raise BenchError(f"server at {args.redis_url} is not empty ({dbsize} keys); pass --flush")
            if args.flush:
                self.r.flushdb()
            if peer.client == "async":
                self.loop = asyncio.new_event_loop()
                self.aio(peer.aopen())
            else:
                peer.open()
            getattr(self, f"fig_{args.figure}")()
        except Unsupported as e:
            self.result.update(unsupported=True, reason=str(e), seconds=None, rate=None)
        except BenchError as e:
            self.result["error"] = str(e)
            code = 1
        except Exception as e:  # the peer misbehaved: report, never hang
            self.result["error"] = f"{type(e).__name__}: {e}"
            self.result["traceback"] = traceback.format_exc()[-2000:]
            code = 1
        finally:
            self.workers.stop()
            if code and self.workers.logs:
                self.result["worker_log_tail"] = self.workers.log_tail()
            with contextlib.suppress(Exception):
                if peer.client == "async" and self.loop is not None:
                    self.aio(asyncio.wait_for(peer.aclose(), 5))
                    self.loop.close()
                else:
                    peer.close()
            shutil.rmtree(self.logdir, ignore_errors=True)
        if code:
            self.result["seconds"] = self.result["rate"] = None
        self.result["variant"] = peer.variant
        self.result["config"] = peer.config()
        self.result["versions"] = versions(peer.packages())
        return code


def parse_args(peer_cls: type[PeerBase], argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=f"benchmarks/systems/{peer_cls.name}.py",
        description=f"Benchmark adapter for {peer_cls.name} (see benchmarks/peers.md)",
    )
    p.add_argument("figure", choices=FIGURES)
    p.add_argument("--redis-url", required=True)
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--variant", choices=peer_cls.variants, default=peer_cls.variants[0])
    p.add_argument(
        "--timeout", type=float, default=None, help="hard limit for the whole run in seconds (default 60 + N/40)"
    )
    p.add_argument("--pickup-jobs", type=int, default=PICKUP_JOBS, help=f"pickup jobs (default {PICKUP_JOBS})")
    p.add_argument("--flush", action="store_true", help="FLUSHDB first instead of requiring an empty server")
    args = p.parse_args(argv)
    if not args.timeout:
        args.timeout = 60.0 + args.n / 40.0
    return args


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.flush()
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(module_name: str) -> None:
    """Script entry point of every adapter (see the module docstring)."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    # Adapters build their app/broker at import time from the environment (as their
    # workers do): give them the URL, variant and process count before importing.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--redis-url")
    pre.add_argument("--variant")
    pre.add_argument("--processes")
    known, _ = pre.parse_known_args()
    for env, value in ((URL_ENV, known.redis_url), (VARIANT_ENV, known.variant), (PROCESSES_ENV, known.processes)):
        if value:
            os.environ[env] = value
    try:
        mod = importlib.import_module(module_name)
    except Exception as e:  # the peer is not installed, or does not import: still one JSON line
        traceback.print_exc()
        _emit(
            {
                "system": module_name.rsplit(".", 1)[-1],
                "figure": sys.argv[1] if len(sys.argv) > 1 else None,
                "n": None,
                "seconds": None,
                "rate": None,
                "error": f"cannot import the adapter: {type(e).__name__}: {e}",
            }
        )
        sys.exit(1)
    peer_cls: type[PeerBase] = mod.Peer
    args = parse_args(peer_cls)
    system = f"{peer_cls.name}-{args.variant}" if len(peer_cls.variants) > 1 else peer_cls.name
    base = {
        "system": system,
        "figure": args.figure,
        "n": args.n,
        "seconds": None,
        "rate": None,
        "variant": args.variant,
    }
    if (urlparse(args.redis_url).port or 6379) == 6379:
        _emit({**base, "error": "refusing to use a server on port 6379 (the machine's own Redis)"})
        sys.exit(2)
    os.environ[URL_ENV] = args.redis_url
    os.environ[VARIANT_ENV] = args.variant
    os.environ[PROCESSES_ENV] = str(args.processes)

    run = Run(peer_cls(args), args)
    done = threading.Event()
    emitted = threading.Lock()

    def hard_stop(reason: str) -> None:
        # the main thread is stuck (or we were signalled): kill workers, report, exit now
        if not emitted.acquire(blocking=False):
            return
        with contextlib.suppress(Exception):
            run.workers.stop(grace=2.0)
        with contextlib.suppress(Exception):
            shutil.rmtree(run.logdir, ignore_errors=True)
        _emit({**base, "error": reason})
        os._exit(3)

    def watchdog() -> None:
        if not done.wait(args.timeout + 30.0):
            hard_stop(f"hard timeout: run did not finish within {args.timeout + 30.0:.0f}s")

    threading.Thread(target=watchdog, daemon=True).start()

    def on_signal(signum: int, _frame: Any) -> None:
        threading.Thread(target=hard_stop, args=(f"interrupted by signal {signum}",)).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    code = run.execute()
    done.set()
    if emitted.acquire(blocking=False):
        _emit(run.result)
        sys.exit(code)
    time.sleep(10)  # hard_stop owns the output and exits
