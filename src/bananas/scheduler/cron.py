"""Cron expressions and time zones: when a periodic schedule's ticks fall.

Parsing and matching are done by ``cronsim`` (see docs/PERIODIC_TASKS.md for why);
this module adds the ``@hourly``-style aliases, IANA time zones, clear errors, and one
rule that makes DST behave the same whether an expression has 5 or 6 fields.

Ticks are whole Unix seconds. The two questions the scheduler asks are "first tick
strictly after T" and "last tick at or before T"; both are answered here, purely.

DST rule (Debian cron's, which cronsim implements for 5-field expressions): a schedule
that runs at a *fixed time of day* (minute and hour fields are not ``*``-based) runs
once on a spring-forward day (a time inside the skipped hour runs right after the
jump) and once on a fall-back day (the first of the two repeated times). Schedules
that are not fixed-time (``*/15 * * * *``, ``@hourly``, every second) follow real
elapsed time: they simply have no ticks in the skipped hour and tick through both
passes of the repeated hour. A 6-field expression with a fixed minute and hour gets
the fixed-time rule too: its minute/hour part is evaluated as 5 fields, then its
seconds are added.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

#: Aliases accepted in place of an expression (Vixie cron's; ``@reboot`` has no meaning here).
ALIASES: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

EXPECTED_FORMS = (
    "expected 5 fields (minute hour day-of-month month day-of-week), "
    "6 fields with a leading seconds field (second minute hour day-of-month month day-of-week), "
    "or an alias (" + ", ".join(ALIASES) + ")"
)

#: Candidates examined per question before giving up (a guard, never reached by a valid
#: expression: a DST fold can make the library return at most a few stale candidates).
_MAX_CANDIDATES = 1000
#: A fixed instant (2000-01-01 UTC) from which expressions are checked to match at all.
_REFERENCE = 946_684_800


class CronError(ValueError):
    """An expression or time zone cannot be used. ``reason`` says why, for the caller to
    prefix with the schedule it belongs to."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def load_timezone(name: str) -> tzinfo:
    """The IANA time zone ``name`` (``UTC`` is always available), or ``CronError``."""
    if not isinstance(name, str) or not name.strip():
        raise CronError(f"time zone must be a non-empty IANA name such as 'Europe/Berlin', got {name!r}")
    if name.strip().upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        hint = "expected an IANA name such as 'Europe/Berlin' or 'UTC'"
        raise CronError(f"unknown time zone {name!r} ({hint})") from None


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A validated cron expression in a time zone."""

    expression: str
    timezone: str = "UTC"
    tz: tzinfo = field(init=False, repr=False, compare=False)
    #: Expression handed to cronsim (5 fields in fixed-time mode, else as written).
    _library_expr: str = field(init=False, repr=False, compare=False)
    #: Seconds added to each library match (fixed-time mode), else ``(0,)``.
    _seconds: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.expression, str) or not self.expression.strip():
            raise CronError(f"cron expression must be a non-empty string, got {self.expression!r}")
        object.__setattr__(self, "tz", load_timezone(self.timezone))
        text = " ".join(self.expression.split())
        if text.startswith("@"):
            expanded = ALIASES.get(text.lower())
            if expanded is None:
                raise CronError(f"unknown cron alias {text!r}; {EXPECTED_FORMS}")
            text = expanded
        fields = text.split(" ")
        if len(fields) not in (5, 6):
            count = len(fields)
            raise CronError(f"invalid cron expression {self.expression!r}: it has {count} fields; {EXPECTED_FORMS}")
        library_expr: str = text
        seconds: tuple[int, ...] = (0,)
        if len(fields) == 6 and _fixed_time(fields[1], fields[2]):
            library_expr = " ".join(fields[1:])
            seconds = _second_values(fields[0], self.expression)
        _check(library_expr, self.expression)
        object.__setattr__(self, "_library_expr", library_expr)
        object.__setattr__(self, "_seconds", seconds)
        if self.next_after(_REFERENCE) is None:
            raise CronError(f"cron expression {self.expression!r} never matches (no tick within 50 years)")

    def next_after(self, ts: int) -> int | None:
        """The first tick strictly after ``ts`` (Unix seconds), or None if there is none."""
        reach = max(self._seconds)
        for candidate in self._candidates(ts - reach, reverse=False):
            for second in self._seconds:
                if candidate + second > ts:
                    return candidate + second
        return None

    def last_at_or_before(self, ts: int) -> int | None:
        """The last tick at or before ``ts``, or None if there is none (in 50 years)."""
        found: int | None = None
        for candidate in self._candidates(ts + 1, reverse=True):
            for second in reversed(self._seconds):
                if candidate + second <= ts:
                    found = candidate + second
                    break
            if found is not None:
                break
        if found is None:
            return None
        # In a repeated (fall-back) hour the reverse walk can land one occurrence early;
        # the forward walk is the definition, so step forward while it stays <= ts.
        for _ in range(_MAX_CANDIDATES):
            later = self.next_after(found)
            if later is None or later > ts:
                return found
            found = later
        return found  # pragma: no cover

    def _candidates(self, start_ts: int, *, reverse: bool) -> Iterator[int]:
        start = datetime.fromtimestamp(start_ts, self.tz)
        matches = CronSim(self._library_expr, start, reverse=reverse)
        for _ in range(_MAX_CANDIDATES):
            try:
                moment = next(matches)
            except StopIteration:
                return
            yield int(moment.timestamp())


def _fixed_time(minute: str, hour: str) -> bool:
    return not minute.startswith("*") and not hour.startswith("*")


def _check(library_expr: str, original: str) -> None:
    try:
        CronSim(library_expr, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise CronError(f"invalid cron expression {original!r}: {_describe(exc)}") from None
    except (ValueError, IndexError, KeyError, TypeError):
        raise CronError(f"invalid cron expression {original!r}; {EXPECTED_FORMS}") from None


def _second_values(seconds_field: str, original: str) -> tuple[int, ...]:
    """The second-of-minute values a seconds field matches, in order."""
    _check(f"{seconds_field} * * * * *", original)
    minute_start = datetime(2000, 1, 1, tzinfo=UTC)
    matches = CronSim(f"{seconds_field} * * * * *", minute_start - timedelta(seconds=1))
    values: list[int] = []
    for moment in matches:
        if moment - minute_start >= timedelta(minutes=1):
            break
        values.append(moment.second)
    return tuple(values)


def _describe(exc: CronSimError) -> str:
    text = str(exc) or "not a cron expression"
    return text[0].lower() + text[1:] if text else text
