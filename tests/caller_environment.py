"""Which environment variables of the caller the test session removes (tests/conftest.py):
settings a caller may have exported for their own Bananas must change no test."""

from __future__ import annotations

from collections.abc import Mapping

from bananas import WorkerSettings

#: Settings a caller may have exported for their own Bananas (``REDIS_URL``,
#: ``BANANAS_ROUTES``, ``WORKER_*``, ``JOB_*``...): they must change no test, so the session
#: removes them from ``os.environ`` before anything reads it (subprocess environments are
#: built from ``os.environ``, so they are clean too) and puts them back at the end.
CALLER_PREFIXES = ("BANANAS_", "WORKER_", "JOB_", "RETRY_", "RESULT_")
CALLER_NAMES = frozenset({"REDIS_URL", "MAX_RETRIES", "DEAD_LETTER_MAX", *WorkerSettings().to_env()})
#: The suite's own knobs (docs/RELIABILITY.md, the README and the tests that read them).
SUITE_KNOBS = frozenset(
    {
        "BANANAS_SOAK",
        "BANANAS_SOAK_SCALE",
        "BANANAS_FAULTS_REPORT",
        "BANANAS_PERIODIC_SOAK_SECONDS",
        "BANANAS_TLS_SERVER_BINARY",
        "BANANAS_SERVER_BINARY",  # which server binary the session starts (README, Configuration)
    }
)


def caller_settings(environ: Mapping[str, str]) -> list[str]:
    """Names in ``environ`` that would configure Bananas (and so must not reach a test)."""
    return sorted(
        name
        for name in environ
        if name not in SUITE_KNOBS and (name in CALLER_NAMES or name.startswith(CALLER_PREFIXES))
    )
