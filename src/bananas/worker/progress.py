"""Throttled progress reports of a running job (``job.set_progress``).

A handler may report in a tight loop; at most one write per ``interval`` goes to Redis
(the latest value at the time of the write), and the last value is always written
before the job's outcome. Reports may come from the handler's thread (sync handlers)
or the event loop (async ones).
"""

from __future__ import annotations

import asyncio
import threading

from bananas.core.clock import Clock, format_time, to_datetime
from bananas.redis import calls
from bananas.worker.writer import Writer

#: Seconds between two writes of one job's progress (at most 5 a second).
PROGRESS_INTERVAL = 0.2
#: Seconds a progress hash is kept after its last report.
PROGRESS_TTL = 24 * 3600


class ProgressReporter:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        writer: Writer,
        clock: Clock,
        job_id: str,
        token: str,
        interval: float = PROGRESS_INTERVAL,
    ) -> None:
        self._loop = loop
        self._writer = writer
        self._clock = clock
        self._job_id = job_id
        self._token = token
        self._interval = interval
        self._lock = threading.Lock()
        self._latest: tuple[float, str | None, float] | None = None
        self._last_sent = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self._scheduled = False
        self._closed = False
        #: Writes sent so far (for tests and the curious).
        self.writes = 0

    def __call__(self, fraction: float, message: str | None) -> None:
        """Record a report; schedule a write unless one is already due."""
        with self._lock:
            if self._closed:
                return
            self._latest = (fraction, message, self._clock.now())
            if self._scheduled:
                return
            self._scheduled = True
        if self._in_loop():
            self._schedule()
        else:
            self._loop.call_soon_threadsafe(self._schedule)

    def _in_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _schedule(self) -> None:
        delay = max(0.0, self._last_sent + self._interval - self._loop.time())
        self._timer = self._loop.call_later(delay, self._send)

    def _send(self) -> None:
        with self._lock:
            self._scheduled = False
            self._timer = None
            latest, self._latest = self._latest, None
        if latest is None or self._closed:
            return
        self._last_sent = self._loop.time()
        fraction, message, at = latest
        self.writes += 1
        call = calls.progress(
            self._job_id,
            self._token,
            fraction,
            message or "",
            format_time(to_datetime(at)),
            PROGRESS_TTL,
            layout=self._writer.layout,
        )
        future = self._writer.send(call)
        future.add_done_callback(_ignore)

    def flush(self) -> None:
        """The handler returned: write the last report now if it is not written yet (it
        goes through the writer before the job's outcome), and take no more."""
        if self._timer is not None:
            self._timer.cancel()
        pending = self._latest is not None
        if pending:
            self._send()
        with self._lock:
            self._closed = True
            self._scheduled = False


def _ignore(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so a lost write is not reported as unhandled
