"""The registry maps job names to handler functions."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bananas.core.job import DEFAULT_MAX_RETRIES, Job
from bananas.core.priority import Priority
from bananas.core.routing import DEFAULT_ROUTING_KEY
from bananas.errors import ValidationError
from bananas.events import EventKind, Listener, parse_kinds
from bananas.scheduler.definition import DEFAULT_GRACE, DEFAULT_MISSED, MissedPolicy, Schedule, ScheduleError

HandlerFunc = Callable[[Job], Any] | Callable[[Job], Awaitable[Any]]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Handler:
    name: str
    func: Callable[[Job], Any]
    is_async: bool
    timeout: float | None = None


class Registry:
    """Handlers by job name. ``@registry.handler("name")`` registers sync or async functions
    that take one ``Job``; their return value (JSON) is the job's result."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._schedules: list[Schedule] = []
        self._listeners: list[tuple[frozenset[EventKind] | None, Listener]] = []

    def handler(self, name: str, *, timeout: float | None = None) -> Callable[[F], F]:
        if not isinstance(name, str) or not name:
            raise ValidationError(f"handler name must be a non-empty string, got {name!r}")
        if name in self._handlers:
            raise ValidationError(f"a handler for {name!r} is already registered")

        def register(func: F) -> F:
            self._handlers[name] = Handler(name, func, inspect.iscoroutinefunction(func), timeout)
            return func

        return register

    def add(self, name: str, func: HandlerFunc, *, timeout: float | None = None) -> None:
        self.handler(name, timeout=timeout)(func)

    def get(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self._handlers)

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def __len__(self) -> int:
        return len(self._handlers)

    # -- event listeners (docs/EVENTS.md) ------------------------------------------------

    def on(self, *kinds: EventKind | str) -> Callable[[Listener], Listener]:
        """Register ``fn(event)`` for events of ``kinds`` (every kind when none is given).

        Listeners run in the worker process, synchronously, after Redis applied the
        transition; one that raises is logged and never breaks a job."""
        try:
            chosen = parse_kinds(kinds)
        except ValueError:
            known = ", ".join(k.value for k in EventKind)
            raise ValidationError(f"unknown event kind in {list(kinds)!r} (known: {known})") from None

        def register(func: Listener) -> Listener:
            if not callable(func):
                raise ValidationError(f"an event listener must be callable, got {func!r}")
            self._listeners.append((chosen, func))
            return func

        return register

    @property
    def listeners(self) -> list[tuple[frozenset[EventKind] | None, Listener]]:
        return list(self._listeners)

    # -- periodic schedules (run by ``bananas scheduler``; docs/PERIODIC_TASKS.md) --------

    def periodic(
        self,
        cron: str,
        job: str,
        payload: Any = None,
        *,
        schedule_id: str | None = None,
        routing_key: str = DEFAULT_ROUTING_KEY,
        priority: Priority | str = Priority.NORMAL,
        timezone: str = "UTC",
        missed: MissedPolicy | str = DEFAULT_MISSED,
        grace: float = DEFAULT_GRACE,
        max_retries: int = DEFAULT_MAX_RETRIES,
        description: str | None = None,
    ) -> Schedule:
        """Enqueue job ``job`` with ``payload`` at every tick of ``cron`` in ``timezone``.

        ``cron``: 5 fields, 6 with a leading seconds field, or ``@hourly``-style alias.
        ``schedule_id`` (default: the job name) identifies the schedule's state in Redis.
        ``missed``: ``"once"`` or ``"skip"`` for ticks missed while no scheduler ran;
        a tick later than ``grace`` seconds counts as missed. Raises ``ScheduleError``
        (a ``ValidationError``) naming the schedule if anything is invalid.
        """
        schedule = Schedule.create(
            cron, job, payload, schedule_id=schedule_id, routing_key=routing_key, priority=priority,
            timezone=timezone, missed=missed, grace=grace, max_retries=max_retries, description=description,
        )  # fmt: skip
        if any(s.id == schedule.id for s in self._schedules):
            raise ScheduleError(schedule.id, "is already defined in this registry (give each one its own schedule_id)")
        self._schedules.append(schedule)
        return schedule

    @property
    def schedules(self) -> list[Schedule]:
        return list(self._schedules)
