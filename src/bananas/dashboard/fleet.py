"""The operational read model and actions the dashboard uses, from the clients.

``Client.workers()``, ``running()``, ``queue_stats().to_json()``, ``pause``, ``resume``,
and ``purge`` belong to the clients (the CLI, the API and the dashboard share
them; the dashboard never reads those Redis keys itself). This Protocol names exactly
what the dashboard needs from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class JsonView(Protocol):
    def to_json(self) -> Any: ...


class FleetClient(Protocol):
    def workers(self) -> Sequence[JsonView]: ...

    def running(self) -> Sequence[JsonView]: ...

    def queue_stats(self) -> JsonView: ...

    def pause(self, routing_key: str, priority: Any = None) -> Any: ...

    def resume(self, routing_key: str, priority: Any = None) -> Any: ...
