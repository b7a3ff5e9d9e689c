"""Where the CLI imports the user's project from (kept apart from ``common`` so that
``bananas --help`` imports nothing heavy)."""

from __future__ import annotations

import os
import sys


def import_from_project() -> None:
    """Put the current directory first on ``sys.path``, as ``python -m`` does: every
    command imports the project's modules (``APP``, ``callable = "module:function"`` rules
    of a route table) by the same rule, whether run as ``bananas`` or ``python -m bananas``."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
