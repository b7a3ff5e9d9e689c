"""Job log lines (a listener of the job events) and the text/json formats of the CLI."""

from __future__ import annotations

import json
import logging

import pytest

from bananas.cli.logformat import JsonFormatter, TextFormatter, escape_control
from bananas.events import EventKind, JobEvent
from bananas.worker.joblog import JobLogListener


def event(kind: EventKind, **fields: object) -> JobEvent:
    base: dict[str, object] = {
        "kind": kind,
        "job_id": "j-1",
        "name": "send_email",
        "routing_key": "email",
        "priority": "high",
        "attempt": 2,
        "worker_id": "host:12:abcd",
        "at": 1_800_000_000.0,
    }
    base.update(fields)
    return JobEvent(**base)  # type: ignore[arg-type]


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> tuple[JobLogListener, Capture]:
    logger = logging.getLogger("test.bananas.jobs")
    logger.handlers[:] = []
    handler = Capture()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return JobLogListener(logger), handler


def test_one_line_per_outcome_at_info_and_start_at_debug(captured: tuple[JobLogListener, Capture]) -> None:
    listener, handler = captured
    listener(event(EventKind.STARTED))
    listener(event(EventKind.SUCCEEDED, duration_s=0.25))
    assert [r.levelno for r in handler.records] == [logging.DEBUG, logging.INFO]
    done = handler.records[1].getMessage()
    for part in ("j-1", "send_email", "email/high", "attempt 2", "succeeded in 0.250s", "host:12:abcd"):
        assert part in done, (part, done)


def test_a_failure_line_says_whether_and_when_it_is_retried(captured: tuple[JobLogListener, Capture]) -> None:
    listener, handler = captured
    listener(event(EventKind.RETRYING, duration_s=0.5, error="ValueError: boom", retry_at=1_800_000_004.0))
    listener(event(EventKind.DEAD, duration_s=0.5, error="ValueError: boom"))
    retried, dead = (r.getMessage() for r in handler.records)
    assert "attempt 2 failed after 0.500s, will be retried at 2027-01-15T08:00:04" in retried
    assert "(in 4.0s)" in retried
    assert "ValueError: boom" in retried
    assert "dead letters" in dead and "retried" not in dead


def test_nothing_is_formatted_when_the_level_is_off(captured: tuple[JobLogListener, Capture]) -> None:
    listener, handler = captured
    logging.getLogger("test.bananas.jobs").setLevel(logging.INFO)
    listener(event(EventKind.STARTED))
    assert handler.records == []


def test_json_line_has_the_event_fields(captured: tuple[JobLogListener, Capture]) -> None:
    listener, handler = captured
    listener(event(EventKind.RETRYING, duration_s=0.5, error="ValueError: boom", retry_at=1_800_000_004.0))
    line = JsonFormatter().format(handler.records[0])
    assert "\n" not in line
    data = json.loads(line)
    assert data["event"] == "retrying"
    assert data["job_id"] == "j-1"
    assert data["name"] == "send_email"
    assert data["routing_key"] == "email"
    assert data["priority"] == "high"
    assert data["attempt"] == 2
    assert data["duration_s"] == 0.5
    assert data["worker_id"] == "host:12:abcd"
    assert data["retry_at"].startswith("2027-01-15T08:00:04")
    assert data["level"] == "INFO"


def test_a_job_name_with_a_newline_cannot_forge_a_text_line(captured: tuple[JobLogListener, Capture]) -> None:
    listener, handler = captured
    forged = "x\n2026-12-03 10:00:00,000 INFO [1] bananas.worker: all good\r\x1b[31m"
    listener(event(EventKind.SUCCEEDED, name=forged, duration_s=0.1))
    line = TextFormatter().format(handler.records[0])
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "x\\n2026-12-03" in line and "\\r\\x1b[31m" in line
    # JSON escapes by itself: still one line, the name intact.
    assert json.loads(JsonFormatter().format(handler.records[0]))["name"] == forged


def test_traceback_lines_are_indented_under_their_record() -> None:
    try:
        raise ValueError("first\nINFO forged line")
    except ValueError:
        record = logging.LogRecord("bananas.worker", logging.ERROR, __file__, 1, "job %s failed", ("j",), None)
        import sys

        record.exc_info = sys.exc_info()
    lines = TextFormatter().format(record).splitlines()
    assert lines[0].endswith("job j failed")
    assert all(line.startswith("    ") for line in lines[1:])
    assert any("INFO forged line" in line for line in lines[1:])


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain", "plain"),
        ("a\nb", "a\\nb"),
        ("tab\there", "tab\\there"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f", "del\\x7f"),
        ("c1\x85", "c1\\x85"),
        ("sep\u2028", "sep\\u2028"),
        ("unicode ok: é ✓", "unicode ok: é ✓"),
    ],
)
def test_escape_control(raw: str, shown: str) -> None:
    assert escape_control(raw) == shown
