"""Route functions named by ``callable = "routing_rules:..."`` in the route table tests."""

from __future__ import annotations

from typing import Any


def by_tenant(name: str, payload: Any) -> str | None:
    """``{"tenant": "acme"}`` -> ``tenant_acme``; no tenant -> no opinion."""
    if isinstance(payload, dict) and "tenant" in payload:
        return f"tenant_{payload['tenant']}"
    return None


def urgent_first(name: str, payload: Any) -> tuple[str, str] | None:
    if isinstance(payload, dict) and payload.get("urgent"):
        return ("urgent", "high")
    return None


NOT_CALLABLE = 42
