"""Routing keys: the rule, and the order in which a worker visits its queues."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bananas.core.priority import Priority
from bananas.errors import InvalidRoutingKeyError

DEFAULT_ROUTING_KEY = "default"
MAX_ROUTING_KEY_LENGTH = 64
_ROUTING_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def validate_routing_key(key: object) -> str:
    """Return ``key`` if it is a valid routing key, else raise ``InvalidRoutingKeyError``.

    A routing key is 1 to 64 characters of ``A-Z a-z 0-9 _ -``. The rule is narrow on
    purpose: the key is embedded in Redis key names (``bananas:route:{key}:queue:...``),
    so ``:``, ``{`` (cluster hash tags), spaces and non-ASCII are all kept out.
    """
    if not isinstance(key, str):
        raise InvalidRoutingKeyError(key, f"must be a string, not {type(key).__name__}")
    if _ROUTING_KEY.fullmatch(key):
        return key
    if key == "":
        raise InvalidRoutingKeyError(key, "must not be empty")
    if len(key) > MAX_ROUTING_KEY_LENGTH:
        raise InvalidRoutingKeyError(key, f"is {len(key)} characters long, the maximum is 64")
    bad = next(ch for ch in key if not _ROUTING_KEY.fullmatch(ch))
    raise InvalidRoutingKeyError(key, f"contains the character {bad!r}")


def normalize_routing_key(key: object) -> str:
    """Routing key as stored in a record: absent, null or empty means ``default``."""
    if key is None or key == "":
        return DEFAULT_ROUTING_KEY
    return validate_routing_key(key)


@dataclass(frozen=True, slots=True)
class QueueRef:
    """One ready list a worker consumes: a routing key and a priority.

    ``legacy`` marks the pre-routing list ``bananas:queue:{priority}`` that workers on
    the ``default`` key drain after ``default``'s routed list of the same priority.
    """

    routing_key: str
    priority: Priority
    legacy: bool = False


def strict_queue_order(
    routing_keys: Sequence[str], priorities: Sequence[Priority], *, include_legacy: bool = True
) -> list[QueueRef]:
    """The seed's strict order: ``k1:high, k1:normal, k1:low, k2:high, ...``.

    For the ``default`` key, each routed list is followed by the legacy list of the same
    priority, so jobs from clients that predate routing still run.
    """
    order: list[QueueRef] = []
    for key in routing_keys:
        for priority in priorities:
            order.append(QueueRef(key, priority))
            if include_legacy and key == DEFAULT_ROUTING_KEY:
                order.append(QueueRef(key, priority, legacy=True))
    return order
