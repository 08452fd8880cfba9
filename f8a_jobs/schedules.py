"""Schedules: the user's ``when``/``periodically``/``cron`` words <-> versioned JSON specs <->
APScheduler triggers.

A spec is what the ``jobs.schedule`` column stores, e.g.
``{"version": 1, "type": "interval", "seconds": 604800, "start": "…", "text": "1 week"}``.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from dateutil import parser as date_parser
from pytimeparse import parse as parse_timespan

from f8a_jobs.errors import InvalidInput

SPEC_VERSION = 1
# A `when` this far in the past still counts as "now": clocks of clients and server differ.
CLOCK_SKEW = timedelta(seconds=60)


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_when(value: Any, now: datetime, field: str = "when") -> datetime:
    """ISO 8601, or the original README's human form ("Mon Feb 20, 14:56"); naive means UTC.

    A human date without a year means its next occurrence.
    """
    if isinstance(value, datetime):
        moment = value
    elif not isinstance(value, str) or not value.strip():
        raise InvalidInput(
            field, f"expected a date and time such as '2026-02-20T14:56:00Z', got {value!r}"
        )
    else:
        moment = _parse_text_time(value.strip(), now, field)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _parse_text_time(text: str, now: datetime, field: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    naive_now = now.replace(tzinfo=None, second=0, microsecond=0)
    try:
        # Two defaults tell which parts the text names. Both are leap years, so that a
        # year-less "Feb 29" parses, and means the next Feb 29.
        first = date_parser.parse(text, default=datetime(2000, 1, 1))
        second = date_parser.parse(text, default=datetime(2004, 2, 2))
        if first.year != 2000 or second.year != 2004:  # a year is given
            return date_parser.parse(text, default=naive_now)
        if (first.month, first.day) != (second.month, second.day):  # no full date given
            first = date_parser.parse(text, default=naive_now)
    except (ValueError, OverflowError):
        raise InvalidInput(field, f"cannot read {text!r} as a date and time") from None
    return _next_occurrence(first, now)


def _next_occurrence(moment: datetime, now: datetime) -> datetime:
    """The first year from ``now``'s on in which month, day and time exist and are not past."""
    for year in range(now.year, now.year + 9):  # a Feb 29 comes within eight years
        try:
            candidate = moment.replace(year=year)
        except ValueError:  # Feb 29 in a common year
            continue
        aware = candidate.replace(tzinfo=UTC) if candidate.tzinfo is None else candidate
        if aware >= now - CLOCK_SKEW:
            return candidate
    raise AssertionError(f"no next occurrence of {moment!r}")  # unreachable: 8 years suffice


def parse_duration(value: Any, field: str) -> int:
    """ "1 week", "5:00:00", "90 seconds" or a number of seconds -> whole seconds (> 0)."""
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int | float):
        seconds = value
    elif isinstance(value, str):
        seconds = parse_timespan(value.strip())
        if seconds is None and value.strip().isdigit():
            seconds = int(value.strip())
    else:
        seconds = None
    if seconds is None:
        raise InvalidInput(
            field,
            f"cannot read {value!r} as a duration such as '1 week', '5:00:00' or '90 seconds'",
        )
    if seconds < 1 or seconds > 100 * 365 * 86400:
        raise InvalidInput(field, f"{value!r} must be between 1 second and 100 years")
    return int(seconds)


def parse_schedule(
    when: Any = None, periodically: Any = None, cron: Any = None, now: datetime | None = None
) -> dict[str, Any]:
    """Validate the three schedule words together and return the spec to store."""
    now = now or utcnow()
    start = now if when in (None, "") else parse_when(when, now)
    if start < now - CLOCK_SKEW:
        raise InvalidInput("when", f"{start.isoformat()} is in the past (now is {now.isoformat()})")
    if periodically not in (None, "") and cron not in (None, ""):
        raise InvalidInput("cron", "give either 'periodically' or 'cron', not both")
    if periodically not in (None, ""):
        seconds = parse_duration(periodically, "periodically")
        return _spec("interval", seconds=seconds, start=start.isoformat(), text=str(periodically))
    if cron not in (None, ""):
        _crontab_trigger(cron, start)
        return _spec("cron", crontab=cron.strip(), start=start.isoformat())
    return _spec("date", run_date=start.isoformat())


def _spec(kind: str, **fields: Any) -> dict[str, Any]:
    return {"version": SPEC_VERSION, "type": kind, **fields}


def _crontab_trigger(expr: Any, start: datetime) -> CronTrigger:
    if not isinstance(expr, str) or len(expr.split()) != 5:
        raise InvalidInput("cron", f"{expr!r} is not a five-field crontab such as '*/5 * * * *'")
    try:
        return CronTrigger(**_crontab_fields(expr), start_date=start, timezone=UTC)
    except (ValueError, IndexError) as exc:
        raise InvalidInput("cron", f"{expr!r}: {exc}") from None


def _crontab_fields(expr: str) -> dict[str, str]:
    minute, hour, day, month, day_of_week = expr.split()
    return {
        "minute": minute,
        "hour": hour,
        "day": day,
        "month": month,
        "day_of_week": crontab_weekdays(day_of_week),
    }


WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def crontab_weekdays(field: str) -> str:
    """A crontab weekday field (0 or 7 = Sunday) as APScheduler 3 day names.

    APScheduler 3 numbers weekdays from Monday = 0, so "1" would mean Tuesday there.
    """
    if field == "*":
        return field
    days: set[int] = set()
    for part in field.lower().split(","):
        span, _, step = part.partition("/")
        first, last = (0, 6) if span == "*" else _weekday_span(span)
        days.update(day % 7 for day in range(first, last + 1, int(step) if step else 1))
    return ",".join(WEEKDAYS[day] for day in sorted(days))


def _weekday_span(span: str) -> tuple[int, int]:
    ends = [_weekday(end) for end in span.split("-", 1)]
    if len(ends) == 1:
        return ends[0], ends[0]
    first, last = ends
    if first > last:
        raise ValueError(f"weekday range {span!r} runs backwards")
    return first, last


def _weekday(token: str) -> int:
    if token in WEEKDAYS:
        return WEEKDAYS.index(token)
    if token.isdigit() and int(token) <= 7:
        return int(token)
    raise ValueError(f"{token!r} is not a weekday (0-7 or sun-sat)")


def build_trigger(spec: dict[str, Any]) -> BaseTrigger:
    """The APScheduler trigger for a stored spec (cached: triggers are immutable)."""
    return _cached_trigger(tuple(sorted(spec.items())))


@functools.lru_cache(maxsize=100_000)
def _cached_trigger(items: tuple[tuple[str, Any], ...]) -> BaseTrigger:
    spec = dict(items)  # specs hold only scalars, so their items make a cache key
    if spec.get("version") != SPEC_VERSION:
        raise ValueError(f"schedule spec version {spec.get('version')!r} is not {SPEC_VERSION}")
    kind = spec["type"]
    if kind == "date":
        return DateTrigger(run_date=datetime.fromisoformat(spec["run_date"]), timezone=UTC)
    if kind == "interval":
        start = datetime.fromisoformat(spec["start"])
        return IntervalTrigger(seconds=spec["seconds"], start_date=start, timezone=UTC)
    if kind == "cron":
        return _crontab_trigger(spec["crontab"], datetime.fromisoformat(spec["start"]))
    raise ValueError(f"unknown schedule type {kind!r}")


def first_run_time(spec: dict[str, Any]) -> datetime | None:
    """A new job's first run: at ``when`` itself (then every period), as the original did."""
    start = datetime.fromisoformat(spec["run_date"] if spec["type"] == "date" else spec["start"])
    return build_trigger(spec).get_next_fire_time(None, start)


def next_run_time(spec: dict[str, Any], now: datetime, already_ran: bool) -> datetime | None:
    """When a resumed job fires next; None once a one-shot job has run."""
    if spec["type"] == "date" and already_ran:
        return None
    return build_trigger(spec).get_next_fire_time(None, now)


def describe(spec: dict[str, Any]) -> dict[str, Any]:
    """The schedule as the API shows it: ``when``, ``periodically``, ``cron``."""
    kind = spec["type"]
    when = spec["run_date"] if kind == "date" else spec["start"]
    return {
        "when": datetime.fromisoformat(when).isoformat(),
        "periodically": spec.get("text") if kind == "interval" else None,
        "cron": spec.get("crontab") if kind == "cron" else None,
    }
