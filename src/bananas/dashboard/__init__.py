"""``bananas dashboard``: the web dashboard and JSON API (needs the ``dashboard`` extra).

``create_app(client, settings)`` builds the ASGI app; see docs/DASHBOARD.md.
"""

from __future__ import annotations

from bananas.dashboard.app import create_app
from bananas.dashboard.settings import DashboardSettings

__all__ = ["DashboardSettings", "create_app"]
