"""The suite is immune to the caller's environment (issue 9, item 14): an exported
``BANANAS_ROUTES``, ``REDIS_URL``, ``WORKER_*``, ``JOB_*`` or ``BANANAS_*`` changes no test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from caller_environment import caller_settings

ROOT = Path(__file__).resolve().parents[2]


JUNK = {
    "BANANAS_ROUTES": "/nonexistent/routes.toml",
    "BANANAS_MAX_PAYLOAD_BYTES": "7",
    "BANANAS_LOG_LEVEL": "NOPE",
    "REDIS_URL": "redis://junk.invalid:1/0",
    "WORKER_CONCURRENCY": "abc",
    "WORKER_ROUTING_KEYS": "bad key",
    "JOB_TIMEOUT": "x",
    "MAX_RETRIES": "-5",
}


def test_no_caller_setting_reaches_a_test() -> None:
    assert caller_settings(os.environ) == []
    assert sorted(caller_settings({**JUNK, "BANANAS_SOAK": "1", "PATH": "/bin"})) == sorted(JUNK)


def test_junk_settings_exported_by_the_caller_change_nothing() -> None:
    """A slice of the suite (producer CLI, route tables, settings) run with junk exported."""
    env = {**os.environ, **JUNK}
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
            "tests/input/test_cli_input.py", "tests/routing/test_client_routing.py", "tests/unit/test_settings.py",
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
