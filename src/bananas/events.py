"""Job events: what happened to a job, told to listeners after Redis applied it.

Every transition of a job (``worker/outcomes.py`` and the maintenance loops) emits one
``JobEvent`` once its script has returned. Logging, metrics, tracing and the dashboard
are listeners; none of them is edited into the flow code. Events carry no payload and
no record, so a listener can neither leak a job's data nor slow a job down with it.

Listeners are synchronous and must be cheap: one that needs I/O queues the event to a
task of its own. A listener that raises is logged (once per listener and kind) and the
job carries on. See docs/EVENTS.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger("bananas.events")


class EventKind(StrEnum):
    STARTED = "started"
    """An attempt began (the record says ``processing``)."""
    SUCCEEDED = "succeeded"
    """The attempt returned; the job is ``completed`` and its result stored."""
    RETRYING = "retrying"
    """The attempt failed and a retry is scheduled (``scheduled``, with backoff)."""
    DEAD = "dead"
    """Failed for good (no retries left, ``Fail``, poison pill, malformed record): in the dead letters."""
    RECOVERED = "recovered"
    """Its worker was lost (lease expired); the job went back to its ready list."""
    GIVEN_BACK = "given_back"
    """Handed back to its ready list at shutdown, without costing an attempt."""
    PARKED = "parked"
    """Handed on to a pool that can run it (no handler here, or rate limited by name)."""
    CANCELLED = "cancelled"
    """Cancelled by an operator (``bananas cancel``, ``Client.cancel``, purge)."""
    EXPIRED = "expired"
    """Not started before its ``expires_at``; it never runs."""

    def __str__(self) -> str:
        return self.value


#: The kinds that end an attempt: their events carry ``duration_s``.
ATTEMPT_ENDS = frozenset({EventKind.SUCCEEDED, EventKind.RETRYING, EventKind.DEAD, EventKind.CANCELLED})


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__,
# which made building an event about 2 µs, two thirds of its cost on the hot path.
# Listeners share one event and must treat it as read-only.
@dataclass(slots=True)
class JobEvent:
    kind: EventKind
    job_id: str
    name: str
    routing_key: str
    priority: str
    attempt: int
    worker_id: str
    #: When it happened, Unix seconds (from the worker's clock).
    at: float
    #: Seconds the attempt ran; None unless the event ends an attempt.
    duration_s: float | None = None
    #: The error text (first line for logs; the record keeps the traceback); None on success.
    error: str | None = None
    #: For ``retrying``: when the retry is due, Unix seconds.
    retry_at: float | None = None
    #: False when Redis refused the transition (a late ack after the lease was lost):
    #: nothing changed and listeners that count outcomes should skip it.
    applied: bool = True
    #: The W3C trace context written at submit (the record's ``traceparent`` field), if
    #: any: tracing listeners parent their spans on it (bananas.tracing). Not payload.
    traceparent: str | None = None


Listener = Callable[[JobEvent], None]


def parse_kinds(kinds: Iterable[EventKind | str]) -> frozenset[EventKind] | None:
    """``()`` means every kind (None); names are checked so a typo fails at start."""
    chosen = frozenset(EventKind(k) for k in kinds)
    return chosen or None


class Listeners:
    """Fan-out of events to sync listeners. With none, ``emit`` is one truthiness check."""

    __slots__ = ("_complained", "_listeners", "_wanted")

    def __init__(self, listeners: Iterable[tuple[frozenset[EventKind] | None, Listener]] = ()) -> None:
        self._listeners: list[tuple[frozenset[EventKind] | None, Listener]] = []
        self._complained: set[tuple[int, EventKind]] = set()
        self._wanted: set[EventKind] = set()
        for kinds, listener in listeners:
            self._append(kinds, listener)

    def add(self, listener: Listener, kinds: Iterable[EventKind | str] = ()) -> None:
        self._append(parse_kinds(kinds), listener)

    def _append(self, kinds: frozenset[EventKind] | None, listener: Listener) -> None:
        self._listeners.append((kinds, listener))
        self._wanted |= set(EventKind) if kinds is None else kinds

    def wants(self, kind: EventKind) -> bool:
        """Whether any listener takes ``kind`` (so the caller can skip building it)."""
        return kind in self._wanted

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def __len__(self) -> int:
        return len(self._listeners)

    def emit(self, event: JobEvent) -> None:
        for kinds, listener in self._listeners:
            if kinds is not None and event.kind not in kinds:
                continue
            try:
                listener(event)
            except Exception:
                # Never let an observer break a job; say so once per listener and kind.
                key = (id(listener), event.kind)
                if key not in self._complained:
                    self._complained.add(key)
                    log.exception(
                        "event listener %s raised on a %s event (job %s); further errors of it are not logged",
                        getattr(listener, "__qualname__", repr(listener)),
                        event.kind,
                        event.job_id,
                    )
