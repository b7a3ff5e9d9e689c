"""Log formats of the long-running commands (``--log-format text|json``, $BANANAS_LOG_FORMAT).

``text`` is one human line per record; every control character of the message (newline,
carriage return, escape...) is written as an escape sequence, so a job name or an error
text cannot forge a log line, and the lines of a traceback are indented so that none of
them can pass for a record of its own. ``json`` is one object per line; a job line carries
the fields of its event at the top level (docs/OPERATIONS.md, "Logs").
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import orjson

LOG_FORMATS = ("text", "json")

#: C0 and C1 control characters, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_control(text: str) -> str:
    """``a\\nb`` for a newline, ``\\x1b`` for an escape: printable, on one line."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(_escape_one, text)


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


class TextFormatter(logging.Formatter):
    """``time LEVEL [pid] logger: message``, with the message's control characters escaped."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_control(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + _indent(record.exc_text)
        if record.stack_info:
            line += "\n" + _indent(self.formatStack(record.stack_info))
        return line


def _indent(text: str) -> str:
    # An exception message may hold a newline of a job's making: no traceback line
    # starts at the margin, where log lines start.
    return "\n".join("    " + escape_control(line) for line in text.splitlines())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``pid``, ``message``, plus
    a job event's fields (``event``, ``job_id``, ``name``...) when the record has them."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        fields = getattr(record, "bananas", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return orjson.dumps(out, default=str).decode()


def make_formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()
