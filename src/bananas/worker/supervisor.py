"""``--processes N``: one supervisor keeps N worker processes running.

Children are fresh interpreters (``python -m bananas worker APP --processes 1``) that
get their settings through the environment, so secrets never appear in ``ps``. A child
that dies is restarted; one that keeps dying quickly is restarted with growing delays.
SIGTERM/SIGINT are forwarded, and the supervisor exits 0 once every child has stopped.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bananas.config import WorkerSettings

log = logging.getLogger("bananas.supervisor")

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
    return {**base, **settings.to_env(), "WORKER_PROCESSES": "1"}


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
                "worker process %d (pid %d) exited with code %s after %.1fs; restarting in %.1fs",
                slot.index, slot.process.pid, code, lived, delay,
            )  # fmt: skip
            self._exited(slot.process.pid)
            slot.process = None
            slot.restart_at = now + delay
            slot.restarts += 1
        if slot.process is None and now >= slot.restart_at and not self._stopping:
            self._spawn(slot)
