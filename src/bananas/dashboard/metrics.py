"""``/metrics``: the fleet's queue gauges, from the same collector ``bananas exporter`` serves."""

from __future__ import annotations

import importlib
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from bananas.dashboard.errors import ApiError


def metrics_response(client: Any) -> tuple[bytes, str]:
    """Scrape the queue collector once, for one request."""
    try:
        module: Any = importlib.import_module("bananas.metrics")
    except ImportError:
        raise ApiError(503, "unavailable", "queue metrics need bananas.metrics (prometheus-client)") from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(module.queue_collector(client))
    return generate_latest(registry), CONTENT_TYPE_LATEST
