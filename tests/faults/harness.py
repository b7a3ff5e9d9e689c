"""The fault suite's tools: worker subprocesses, load, a chaos TCP proxy, and the check
of every job id at the end of a scenario.

Scale: the default (CI) mode keeps each scenario to a few thousand jobs and seconds of
faults; ``BANANAS_SOAK=1`` multiplies jobs and faults (see docs/RELIABILITY.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis

from bananas import Client, Priority
from bananas.embedded import free_port
from bananas.redis import keys

T = TypeVar("T")

SOAK = os.environ.get("BANANAS_SOAK", "").strip().lower() in ("1", "true", "yes", "on")
#: Multiplier of jobs and faults in soak mode.
SCALE = int(os.environ.get("BANANAS_SOAK_SCALE", "10")) if SOAK else 1
ROUTING_KEYS = ("alpha", "beta", "default")
PRIORITIES = (Priority.HIGH, Priority.NORMAL, Priority.LOW)
APP = "faults.app:registry"

#: Summary lines of the scenarios run in this session (printed at the end by conftest).
SUMMARIES: list[str] = []


def scaled(n: int) -> int:
    return n * SCALE


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``predicate`` until truthy, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last value {value!r})")
        time.sleep(interval)


# -- processes ---------------------------------------------------------------------------


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 is field 3, the state)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far, from /proc (no psutil)."""
    fields = proc_stat(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = proc_stat(int(entry.name))
        if fields is not None and fields[0] != "Z" and int(fields[1]) == pid:
            out.append(int(entry.name))
    return sorted(out)


class Proc:
    """One ``bananas`` CLI subprocess in its own process group (children included)."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in cleanup()
        self.process = subprocess.Popen(
            self.argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stopped(self) -> bool:
        """True once the process is stopped (SIGSTOP took effect: state ``T`` in /proc)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rpartition(")")[2].split()[0] in ("T", "t")

    def children(self) -> list[int]:
        return children_of(self.pid)

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def cleanup(self) -> None:
        """SIGCONT then SIGKILL the whole group, so nothing outlives the test."""
        for sig in (signal.SIGCONT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
        with contextlib.suppress(Exception):
            self.process.wait(10)
        self._log.close()


class Fleet:
    """Starts worker subprocesses for one scenario and always kills them all at the end."""

    def __init__(self, base_env: dict[str, str], store_url: str, tmp: Path) -> None:
        self.base_env = base_env
        self.store_url = store_url
        self.tmp = tmp
        self.procs: list[Proc] = []
        self._n = 0

    def worker(
        self,
        redis_url: str,
        *,
        processes: int = 1,
        concurrency: int = 6,
        lease: float = 2.0,
        routing_keys: Sequence[str] = ROUTING_KEYS,
        env: dict[str, str] | None = None,
        name: str | None = None,
    ) -> Proc:
        self._n += 1
        name = name or f"worker{self._n}"
        full_env = {
            **self.base_env,
            "REDIS_URL": redis_url,
            "TEST_STORE_URL": self.store_url,
            "WORKER_ROUTING_KEYS": ",".join(routing_keys),
            "WORKER_CONCURRENCY": str(concurrency),
            "JOB_LEASE_SECONDS": str(lease),
            "RETRY_BACKOFF_BASE": "0.1",
            "RETRY_BACKOFF_MAX": "0.5",
            "WORKER_SHUTDOWN_GRACE": "20",
            "BANANAS_LOG_LEVEL": "INFO",
            **(env or {}),
        }
        argv = [sys.executable, "-m", "bananas", "worker", APP, "--processes", str(processes)]
        proc = Proc(name, argv, full_env, self.tmp / f"{name}.log")
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.procs:
            proc.cleanup()


def workers_ready(r: redis.Redis, count: int) -> Callable[[], bool]:
    """True once ``count`` workers announce themselves (their heartbeat ran once)."""
    return lambda: r.zcard(keys.WORKERS) >= count


# -- load --------------------------------------------------------------------------------


def job_specs(n: int, *, names: Sequence[str] = ("work", "work_sync"), ms: tuple[int, int] = (10, 60)) -> list[Any]:
    rng = random.Random(n)
    return [
        (
            names[i % len(names)],
            ROUTING_KEYS[i % len(ROUTING_KEYS)],
            PRIORITIES[(i // len(ROUTING_KEYS)) % len(PRIORITIES)],
            {"ms": rng.randint(*ms)},
        )
        for i in range(n)
    ]


def submit_all(client: Client, specs: Iterable[Any], batch: int = 200) -> list[str]:
    """Submit in batches grouped by (name, routing key, priority); returns every id."""
    groups: dict[tuple[str, str, Priority], list[Any]] = {}
    for name, rk, prio, payload in specs:
        groups.setdefault((name, rk, prio), []).append(payload)
    ids: list[str] = []
    for (name, rk, prio), payloads in groups.items():
        for start in range(0, len(payloads), batch):
            ids += client.submit_many(name, payloads[start : start + batch], prio, routing_key=rk)
    return ids


@dataclass
class Submitter:
    """Submits jobs from a thread while faults happen. A call that raised is not counted
    as accepted (its jobs may or may not exist); the next call uses new ids."""

    client: Client
    specs: list[Any]
    batch: int = 10
    pause: float = 0.01
    accepted: list[str] = field(default_factory=list)
    failures: int = 0
    _thread: threading.Thread | None = None

    def start(self) -> Submitter:
        self._thread = threading.Thread(target=self._run, name="submitter", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        pending = list(self.specs)
        while pending:
            chunk = pending[: self.batch]
            try:
                ids = submit_all(self.client, chunk, batch=self.batch)
            except Exception:
                self.failures += 1
                time.sleep(0.2)
                continue
            self.accepted += ids
            del pending[: len(chunk)]
            time.sleep(self.pause)

    def join(self, timeout: float) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the submitter did not finish"


# -- the check ---------------------------------------------------------------------------


def statuses(r: redis.Redis, ids: Sequence[str]) -> dict[str, str | None]:
    import orjson

    out: dict[str, str | None] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        for job_id, raw in zip(chunk, r.mget([keys.job(i) for i in chunk]), strict=True):
            out[job_id] = None if raw is None else orjson.loads(raw).get("status")
    return out


def records(r: redis.Redis, ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    import orjson

    out: dict[str, dict[str, Any] | None] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        for job_id, raw in zip(chunk, r.mget([keys.job(i) for i in chunk]), strict=True):
            out[job_id] = None if raw is None else orjson.loads(raw)
    return out


def wait_completed(r: redis.Redis, ids: Sequence[str], timeout: float) -> None:
    def done() -> bool:
        return all(s == "completed" for s in statuses(r, ids).values())

    def left() -> int:
        return sum(1 for s in statuses(r, ids).values() if s != "completed")

    try:
        wait_until(done, timeout, "every job to complete", interval=0.25)
    except AssertionError:
        raise AssertionError(f"{left()} of {len(ids)} jobs did not complete within {timeout:.0f}s") from None


def wait_settled(r: redis.Redis, ids: Sequence[str], timeout: float) -> None:
    """Until every job is completed or failed (parked)."""
    wait_until(
        lambda: all(s in ("completed", "failed") for s in statuses(r, ids).values()),
        timeout,
        "every job to complete or be parked",
        interval=0.25,
    )


def runs(store: redis.Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in store.hgetall("test:runs").items()}


def run_pids(store: redis.Redis) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for entry in store.lrange("test:log", 0, -1):
        job_id, pid = entry.decode().split("|")
        out.setdefault(job_id, []).append(int(pid))
    return out


@dataclass
class Outcome:
    name: str
    submitted: int
    completed: int
    lost: int
    duplicated: int
    seconds: float
    notes: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.notes.items())
        return (
            f"scenario={self.name} submitted={self.submitted} completed={self.completed} "
            f"lost={self.lost} duplicated={self.duplicated} seconds={self.seconds:.1f}{extra}"
        )


def check(name: str, r: redis.Redis, store: redis.Redis, ids: Sequence[str], started: float, **notes: Any) -> Outcome:
    """Every id: completed and ran at least once, else lost (a job parked in the dead
    letters is counted as ``parked`` instead, in the notes); ran more than once: duplicated."""
    count = runs(store)
    state = statuses(r, ids)
    dead = {m.decode() for m in r.lrange(keys.DEAD, 0, -1)}
    completed = sum(1 for i in ids if state[i] == "completed" and count.get(i, 0) >= 1)
    parked = sum(1 for i in ids if state[i] == "failed" and i in dead)
    lost = len(ids) - completed - parked
    duplicated = sum(1 for i in ids if count.get(i, 0) > 1)
    if parked:
        notes = {"parked": parked, **notes}
    outcome = Outcome(name, len(ids), completed, lost, duplicated, time.monotonic() - started, notes)
    report(outcome)
    return outcome


def report(outcome: Outcome) -> None:
    line = outcome.line()
    SUMMARIES.append(line)
    print(line, flush=True)


def assert_quiet(r: redis.Redis) -> None:
    """Nothing left leased, queued or scheduled once every job completed."""
    assert r.zcard(keys.LEASES) == 0, "leases left behind"
    assert r.hlen(keys.LEASE_OWNERS) == 0, "lease owners left behind"
    for rk in ROUTING_KEYS:
        for prio in PRIORITIES:
            assert r.llen(keys.route_queue(rk, prio)) == 0, f"jobs left in {rk}/{prio.value}"
    assert r.zcard(keys.SCHEDULED) == 0, "jobs left scheduled"


# -- a chaos TCP proxy ---------------------------------------------------------------------


class ChaosProxy:
    """A loopback TCP proxy in front of a Redis server that can cut the connection.

    ``drop()`` closes every connection (RST) and refuses new ones until ``restore()``:
    the server looks down. ``pause()`` keeps connections open but holds every byte in
    both directions until ``resume()``: a network that stalls without telling anyone.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-proxy", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._dropping = False
        self._flowing: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ChaosProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._dropping:
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _abort(writer)
            return
        self._conns.update((writer, up_writer))
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True)
        for w in (writer, up_writer):
            self._conns.discard(w)
            _abort(w)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                await self._flowing.wait()
                if self._dropping:
                    break
                dst.write(data)
                await dst.drain()
        finally:
            _abort(dst)

    def drop(self) -> None:
        async def go() -> None:
            self._dropping = True
            for w in list(self._conns):
                _abort(w)
            self._conns.clear()

        self._call(go())

    def restore(self) -> None:
        async def go() -> None:
            self._dropping = False

        self._call(go())

    def pause(self) -> None:
        async def go() -> None:
            assert self._flowing is not None
            self._flowing.clear()

        self._call(go())

    def resume(self) -> None:
        async def go() -> None:
            assert self._flowing is not None
            self._flowing.set()

        self._call(go())

    def stop(self) -> None:
        async def go() -> None:
            self._dropping = True
            if self._flowing is not None:
                self._flowing.set()
            for w in list(self._conns):
                _abort(w)
            if self._server is not None:
                self._server.close()

        with contextlib.suppress(Exception):
            self._call(go())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def _abort(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()
