"""One ``/metrics`` endpoint for a supervised group of worker processes (``--processes N``).

The supervisor owns a prometheus-client multiprocess directory: it creates it, gives it
to every child ($PROMETHEUS_MULTIPROC_DIR, read by prometheus-client when the child
imports it), serves the sum of the children's files, and when a child exits marks it
dead and removes its files, so a dead child leaves neither series nor files behind (its
counters leave the sums: Prometheus' ``rate()`` reads that as a counter reset). The
directory goes when the supervisor stops; one left behind by a supervisor that was
killed is removed by the next one that starts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess

from bananas.metrics.http import MetricsServer, serve

#: Set by the supervisor in a child's environment: record metrics, do not serve them
#: (read by ``cli/worker.py``).
CHILD_ENV = "BANANAS_METRICS_CHILD"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


PREFIX = "bananas-metrics-"


class GroupMetrics:
    def __init__(self, port: int, host: str = "") -> None:
        remove_stale_directories(Path(tempfile.gettempdir()))
        self.directory = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.directory))  # type: ignore[no-untyped-call]
        try:
            self._server: MetricsServer | None = serve(registry, port, host)
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise

    def child_environment(self) -> dict[str, str]:
        """What a child needs to record into the group's directory (and not to serve)."""
        return {MULTIPROC_ENV: str(self.directory), CHILD_ENV: "1", "WORKER_METRICS_PORT": ""}

    def child_exited(self, pid: int) -> None:
        multiprocess.mark_process_dead(pid, str(self.directory))  # type: ignore[no-untyped-call]
        for path in self.directory.glob(f"*_{pid}.db"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def files(self) -> list[str]:
        return sorted(p.name for p in self.directory.glob("*.db"))

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        shutil.rmtree(self.directory, ignore_errors=True)


def remove_stale_directories(parent: Path) -> list[Path]:
    """Remove the group directories of supervisors that no longer run (named after their pid)."""
    removed = []
    for path in parent.glob(f"{PREFIX}*-*"):
        pid_text = path.name[len(PREFIX) :].partition("-")[0]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
