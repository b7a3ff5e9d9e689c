"""Log filters of the CLI's handler.

``CredentialErrorFilter``: a wrong password or a missing ACL permission that appears
while a worker runs (the ACL changed under it) will not mend itself by retrying, and
each of the worker's loops would report it on every retry, with a traceback. This
filter lets one line per kind of report through per interval, without the traceback,
saying what is wrong and how many were held back. Lost connections are untouched: they
are retried and reported as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bananas.worker.preflight import credential_problem

#: Seconds between two reports of the same credential or permission problem.
CREDENTIAL_REPORT_INTERVAL = 60.0


class CredentialErrorFilter(logging.Filter):
    def __init__(
        self, interval: float = CREDENTIAL_REPORT_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        problem, error = _problem(record)
        if problem is None:
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        shown_at, held = self._last.get(key, (float("-inf"), 0))
        if now - shown_at < self.interval:
            self._last[key] = (shown_at, held + 1)
            return False
        self._last[key] = (now, 0)
        message = record.getMessage().splitlines()[0] if record.getMessage() else ""
        detail = f": {error}" if error and error not in message else ""
        held_back = f"; {held} more like it in the last {self.interval:g}s" if held else ""
        record.msg = f"{problem}: {message}{detail} (shown once every {self.interval:g}s until fixed{held_back})"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        return True


def _problem(record: logging.LogRecord) -> tuple[str | None, str]:
    candidates: list[BaseException] = []
    if record.exc_info and record.exc_info[1] is not None:
        candidates.append(record.exc_info[1])
    if isinstance(record.args, tuple):
        candidates += [a for a in record.args if isinstance(a, BaseException)]
    for exc in candidates:
        problem = credential_problem(exc)
        if problem is not None:
            return problem, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None, ""
