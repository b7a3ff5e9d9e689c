"""The registry maps job names to handler functions."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bananas.core.job import Job
from bananas.errors import ValidationError

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
