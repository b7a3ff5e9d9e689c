"""``--processes N``: one supervisor keeps N worker processes running.

Children are fresh interpreters (``python -m bananas worker APP --processes 1``) that
get their settings through the environment, so secrets never appear in ``ps``. A child
that dies is restarted; one that keeps dying quickly is restarted with growing delays.
SIGTERM/SIGINT are forwarded, and the supervisor exits 0 once every child has stopped.

A child never outlives its supervisor: if the supervisor dies without a word (``kill
-9``, OOM killer), each child gets SIGTERM at once from the kernel (Linux
``PR_SET_PDEATHSIG``) or, elsewhere, notices within a second that its parent changed,
and stops as on SIGTERM: it finishes or gives back its jobs. A restarted supervisor
therefore never runs next to orphans of the last one.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bananas.config import WorkerSettings
from bananas.process import set_parent_death_signal

log = logging.getLogger("bananas.supervisor")

#: Set in a child's environment: the pid of the supervisor it must not outlive.
SUPERVISOR_PID_ENV = "BANANAS_SUPERVISOR_PID"
#: How often a child looks at its parent where the kernel cannot tell it (not Linux).
PARENT_CHECK_INTERVAL = 1.0

#: A child that lived at least this long is considered healthy: its restart delay resets.
HEALTHY_AFTER = 10.0
MAX_RESTART_DELAY = 30.0


@dataclass
class Slot:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_deaths: int = 0
    restart_at: float = 0.0
    restarts: int = field(default=0)


def child_environment(settings: WorkerSettings, base: dict[str, str]) -> dict[str, str]:
    return {**base, **settings.to_env(), "WORKER_PROCESSES": "1", SUPERVISOR_PID_ENV: str(os.getpid())}


def exit_description(code: int) -> str:
    """``exited with code 3``, or ``exited on SIGKILL`` for a child killed by a signal."""
    if code < 0:
        try:
            return f"exited on {signal.Signals(-code).name}"
        except ValueError:
            return f"exited on signal {-code}"
    return f"exited with code {code}"


def stop_with_supervisor(supervisor_pid: int) -> None:
    """In a child: get SIGTERM (a graceful stop) as soon as the supervisor is gone.

    Linux delivers it from the kernel when the parent dies (``PR_SET_PDEATHSIG``); a
    daemon thread watching the parent pid covers other systems and the moment before
    ``prctl`` took effect (a parent that died already: the child was re-parented).
    """
    if sys.platform.startswith("linux") and not set_parent_death_signal(signal.SIGTERM):
        log.warning("prctl(PR_SET_PDEATHSIG) failed; watching the parent pid instead")

    def watch() -> None:
        while os.getppid() == supervisor_pid:
            time.sleep(PARENT_CHECK_INTERVAL)
        log.warning("supervisor (pid %d) is gone: stopping this worker process", supervisor_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="bananas-supervisor-watch", daemon=True).start()


class Supervisor:
    """``extra_env`` goes to every child on top of the settings (log format, the metrics
    group's directory); ``on_child_exit(pid)`` is told of every child that ended (the
    metrics group removes its files)."""

    def __init__(
        self,
        app: str,
        settings: WorkerSettings,
        *,
        log_level: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        on_child_exit: Callable[[int], None] | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.log_level = log_level
        self.extra_env = dict(extra_env or {})
        self.on_child_exit = on_child_exit
        self.slots = [Slot(i) for i in range(settings.processes)]
        self._stopping = False

    def _spawn(self, slot: Slot) -> None:
        argv = [sys.executable, "-m", "bananas", "worker", self.app, "--processes", "1"]
        if self.log_level:
            argv += ["--log-level", self.log_level]
        env = {**child_environment(self.settings, dict(os.environ)), **self.extra_env}
        slot.process = subprocess.Popen(argv, env=env)
        slot.started = time.monotonic()
        log.info("started worker process %d (pid %d)", slot.index, slot.process.pid)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if not self._stopping:
            log.info("%s received: stopping %d worker process(es)", signal.Signals(signum).name, len(self.slots))
        self._stopping = True
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.send_signal(signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for slot in self.slots:
            self._spawn(slot)
        while not self._stopping:
            now = time.monotonic()
            for slot in self.slots:
                self._tend(slot, now)
            time.sleep(0.1)
        deadline = time.monotonic() + self.settings.shutdown_grace + 15
        for slot in self.slots:
            if slot.process is None:
                continue
            try:
                slot.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker process %d did not stop in time; killing it", slot.index)
                slot.process.kill()
                slot.process.wait()
            self._exited(slot.process.pid)
        log.info("all worker processes stopped")
        return 0

    def _exited(self, pid: int) -> None:
        if self.on_child_exit is not None:
            try:
                self.on_child_exit(pid)
            except Exception:
                log.exception("cleaning up after worker process %d failed", pid)

    def _tend(self, slot: Slot, now: float) -> None:
        if slot.process is not None:
            code = slot.process.poll()
            if code is None:
                return
            lived = now - slot.started
            slot.quick_deaths = slot.quick_deaths + 1 if lived < HEALTHY_AFTER else 0
            delay = 0.0 if slot.quick_deaths == 0 else min(MAX_RESTART_DELAY, 0.5 * 2 ** (slot.quick_deaths - 1))
            log.warning(
                "worker process %d (pid %d) %s after %.1fs; restarting in %.1fs",
                slot.index, slot.process.pid, exit_description(code), lived, delay,
            )  # fmt: skip
            self._exited(slot.process.pid)
            slot.process = None
            slot.restart_at = now + delay
            slot.restarts += 1
        if slot.process is None and now >= slot.restart_at and not self._stopping:
            self._spawn(slot)
