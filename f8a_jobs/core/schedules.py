"""Schedules: the user's ``when``/``periodically``/``cron``/``calendar`` words <-> versioned JSON specs <->
APScheduler triggers.

A spec is what the ``jobs.schedule`` column stores, e.g.
``{"version": 1, "type": "interval", "seconds": 604800, "start": "…", "text": "1 week"}``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from dateutil import parser as date_parser

from f8a_jobs.core.calendars import CalendarTrigger, parse_calendar, parse_crontab, parse_zone
from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.errors import InvalidInput, refuse_unknown
from f8a_jobs.core.fields import parse_duration

SPEC_VERSION = 1
# A `when` this far in the past still counts as "now": clocks of clients and server differ.
CLOCK_SKEW = timedelta(seconds=60)


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
        _check_weekday(value, moment, field)
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


WEEKDAY = re.compile(r"\b(mon|tue|wed|thu|fri|sat|sun)[a-z]*\b", re.IGNORECASE)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _check_weekday(text: str, moment: datetime, field: str) -> None:
    """A weekday in the text must be the date's: "Mon Feb 20" when the next Feb 20 is a
    Saturday is a mistake in one of them, and running on either would surprise someone."""
    named = WEEKDAY.search(text)
    if named is None or WEEKDAYS.index(named.group(1).lower()) == moment.weekday():
        return
    raise InvalidInput(
        field,
        f"{text!r} names a {named.group(0).title()}, but {moment.date().isoformat()} (the date it "
        f"reads as) is a {moment.strftime('%A')}: correct the weekday, drop it, or give the year",
    )


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


def parse_schedule(
    when: Any = None,
    periodically: Any = None,
    cron: Any = None,
    now: datetime | None = None,
    calendar: Any = None,
    timezone: Any = None,
    after: Any = None,
    manual: Any = None,
) -> dict[str, Any]:
    """Validate the schedule words together and return the spec to store."""
    now = now or utcnow()
    if manual not in (None, False):
        return _manual_spec(manual, when, periodically, cron, calendar, timezone, after)
    if after not in (None, ""):
        return _after_spec(after, when, periodically, cron, calendar, timezone)
    start = now if when in (None, "") else parse_when(when, now)
    if start < now - CLOCK_SKEW:
        raise InvalidInput("when", f"{start.isoformat()} is in the past (now is {now.isoformat()})")
    words = {"periodically": periodically, "cron": cron, "calendar": calendar}
    given = [name for name, value in words.items() if value not in (None, "")]
    if len(given) > 1:
        raise InvalidInput(given[1], f"give one of {', '.join(words)}, not {' and '.join(given)}")
    if timezone not in (None, "") and given not in (["cron"], ["calendar"]):
        raise InvalidInput("timezone", "applies to a 'cron' or a 'calendar' schedule")
    if periodically not in (None, ""):
        seconds = parse_duration(periodically, "periodically")
        return _spec("interval", seconds=seconds, start=start.isoformat(), text=str(periodically))
    if cron not in (None, ""):
        parse_crontab(cron, parse_zone(timezone, "timezone"))
        zone = {} if timezone in (None, "", "UTC") else {"timezone": timezone}
        return _spec("cron", crontab=cron.strip(), start=start.isoformat(), **zone)
    if calendar not in (None, ""):
        calendar = _calendar_in(calendar, timezone)
        parse_calendar(calendar)
        return _spec("calendar", calendar=calendar, start=start.isoformat())
    return _spec("date", run_date=start.isoformat())


def _manual_spec(manual: Any, *others: Any) -> dict[str, Any]:
    """A job that runs only when started (Datatailr's empty ``Schedule()``): no time makes
    it due."""
    if manual is not True:
        raise InvalidInput("manual", f"expected true or false, got {manual!r}")
    if any(word not in (None, "") for word in others):
        raise InvalidInput("manual", "a job run only when started has no other schedule word")
    return _spec("manual")


AFTER_CONDITIONS = {"success": "success", "failure": "failure", "always": "always"}
AFTER_CONDITIONS |= {f"on {word}": word for word in list(AFTER_CONDITIONS)}  # Datatailr's words


def _after_spec(after: Any, *time_words: Any) -> dict[str, Any]:
    """``after``: run when a run of another job ends (with success, failure, or always)."""
    if any(word not in (None, "") for word in time_words):
        raise InvalidInput("after", "a job runs on a time schedule or after another job, not both")
    if isinstance(after, dict) and True in after:  # YAML 1.1 reads a bare `on:` key as true
        after = {("on" if key is True else key): value for key, value in after.items()}
    if (
        not isinstance(after, dict)
        or not isinstance(after.get("job_id"), str)
        or not after["job_id"]
    ):
        raise InvalidInput(
            "after", "expected {'job_id': 'other-job', 'on': 'success'|'failure'|'always'}"
        )
    refuse_unknown(after, ("job_id", "on"), "after")
    on = after.get("on", "success")
    if not isinstance(on, str) or on.strip().lower() not in AFTER_CONDITIONS:
        raise InvalidInput("after.on", f"{on!r} is not one of success, failure, always")
    return _spec("after", job_id=after["job_id"], on=AFTER_CONDITIONS[on.strip().lower()])


def _calendar_in(calendar: Any, timezone: Any) -> Any:
    """The calendar with the job's ``timezone`` (the same as its own, if it names one)."""
    if not isinstance(calendar, dict) or timezone in (None, ""):
        return calendar
    if calendar.get("timezone", timezone) != timezone:
        raise InvalidInput("timezone", "differs from 'calendar.timezone'")
    return {**calendar, "timezone": timezone}


def _spec(kind: str, **fields: Any) -> dict[str, Any]:
    return {"version": SPEC_VERSION, "type": kind, **fields}


def build_trigger(spec: dict[str, Any]) -> BaseTrigger:
    """The APScheduler trigger for a stored spec (cached: triggers are immutable)."""
    return _cached_trigger(tuple(sorted((name, _hashable(value)) for name, value in spec.items())))


def _hashable(value: Any) -> Any:
    """A spec's value as part of a cache key: scalars as they are (the hot path), an object
    (a calendar) as its JSON text."""
    return ("json", json.dumps(value, sort_keys=True)) if isinstance(value, dict) else value


@functools.lru_cache(maxsize=100_000)
def _cached_trigger(items: tuple[tuple[str, Any], ...]) -> BaseTrigger:
    spec = {
        name: json.loads(value[1]) if isinstance(value, tuple) else value for name, value in items
    }
    if spec.get("version") != SPEC_VERSION:
        raise ValueError(f"schedule spec version {spec.get('version')!r} is not {SPEC_VERSION}")
    kind = spec["type"]
    if kind == "date":
        return DateTrigger(run_date=datetime.fromisoformat(spec["run_date"]), timezone=UTC)
    if kind == "after":
        return NEVER
    if kind == "manual":
        return ONLY_WHEN_STARTED
    start = datetime.fromisoformat(spec["start"])
    if kind == "interval":
        return BoundedInterval(seconds=spec["seconds"], start_date=start, timezone=UTC)
    if kind == "cron":
        zone = parse_zone(spec.get("timezone"), "timezone")
        return CalendarTrigger(parse_crontab(spec["crontab"], zone), start)
    if kind == "calendar":
        return CalendarTrigger(parse_calendar(spec["calendar"]), start)
    raise ValueError(f"unknown schedule type {kind!r}")


class BoundedInterval(IntervalTrigger):  # type: ignore[misc]
    """An interval whose next time would fall past the calendar's end (year 9999) has none:
    the schedule ends there instead of failing every time it is asked."""

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        try:
            return super().get_next_fire_time(previous_fire_time, now)
        except (OverflowError, ValueError):  # "year 10000 is out of range"
            return None


class _Never(BaseTrigger):  # type: ignore[misc]
    """The trigger of a job that runs after another's runs, or only when started: time
    never makes it due."""

    def __init__(self, text: str) -> None:
        self.text = text

    def get_next_fire_time(self, previous_fire_time: Any, now: datetime) -> None:
        return None

    def __str__(self) -> str:
        return self.text


NEVER = _Never("after another job")
ONLY_WHEN_STARTED = _Never("only when started")
UNTIMED = ("after", "manual")  # the schedules no time makes due


def first_run_time(spec: dict[str, Any]) -> datetime | None:
    """A new job's first run: at ``when`` itself (then every period), as the original did."""
    if spec["type"] in UNTIMED:
        return None
    start = datetime.fromisoformat(spec["run_date"] if spec["type"] == "date" else spec["start"])
    return build_trigger(spec).get_next_fire_time(None, start)


def next_run_time(spec: dict[str, Any], now: datetime, already_ran: bool) -> datetime | None:
    """When a resumed job fires next; None once a one-shot job has run."""
    if spec["type"] == "date" and already_ran:
        return None
    return build_trigger(spec).get_next_fire_time(None, now)


def describe(spec: dict[str, Any]) -> dict[str, Any]:
    """The schedule as the API shows it: ``when``, and ``periodically``, ``cron`` or
    ``calendar`` with the ``timezone`` of its slots."""
    kind = spec["type"]
    when = spec.get("run_date") if kind == "date" else spec.get("start")
    calendar = spec.get("calendar") if kind == "calendar" else None
    after = {"job_id": spec["job_id"], "on": spec["on"]} if kind == "after" else None
    return {
        "when": datetime.fromisoformat(when).isoformat() if when else None,
        "after": after,
        "periodically": spec.get("text") if kind == "interval" else None,
        "cron": spec.get("crontab") if kind == "cron" else None,
        "calendar": calendar,
        "timezone": str(schedule_zone(spec)) if kind in ("cron", "calendar") else None,
        "manual": kind == "manual",
    }


def schedule_zone(spec: dict[str, Any]) -> tzinfo:
    """The time zone the schedule's slots are local to (UTC for the others)."""
    if spec["type"] == "cron":
        return parse_zone(spec.get("timezone"), "timezone")
    if spec["type"] == "calendar":
        return parse_zone(spec["calendar"].get("timezone"), "calendar.timezone")
    return UTC


MAX_NEXT_RUNS = 1000


def next_fire_times(spec: dict[str, Any], start: datetime, count: int) -> list[datetime]:
    """The schedule's first ``count`` fire times from ``start`` on."""
    if not 1 <= count <= MAX_NEXT_RUNS:
        raise InvalidInput("count", f"expected 1 to {MAX_NEXT_RUNS}, got {count}")
    if spec["type"] in UNTIMED:
        return []
    trigger = build_trigger(spec)
    first = datetime.fromisoformat(spec["run_date"] if spec["type"] == "date" else spec["start"])
    moment = trigger.get_next_fire_time(None, max(start, first))
    found: list[datetime] = []
    while moment is not None and len(found) < count:
        found.append(moment)
        moment = trigger.get_next_fire_time(moment, moment)
    return found


def rundate(spec: dict[str, Any] | None, scheduled_for: datetime) -> str:
    """Datatailr's rundate: the slot's local date plus the calendar's ``rundate_offset``."""
    if spec is None:
        return scheduled_for.astimezone(UTC).date().isoformat()
    offset = spec["calendar"].get("rundate_offset", 0) if spec["type"] == "calendar" else 0
    local = scheduled_for.astimezone(schedule_zone(spec)).date()
    return (local + timedelta(days=offset)).isoformat()


def schedule_slots(spec: dict[str, Any], start: datetime, end: datetime) -> Iterator[datetime]:
    """The schedule's slots from ``start`` to ``end`` (both included), oldest first, before the
    job's own start too: a backfill asks what the schedule would have run."""
    kind = spec["type"]
    if kind in UNTIMED:
        return
    if kind == "date":
        moment = datetime.fromisoformat(spec["run_date"])
        if start <= moment <= end:
            yield moment
        return
    if kind == "interval":
        anchor, step = datetime.fromisoformat(spec["start"]), timedelta(seconds=spec["seconds"])
        try:
            moment = anchor + step * -((anchor - start) // step)  # the first slot from start on
            while moment <= end:
                yield moment
                moment += step
        except OverflowError:  # the next slot would fall past year 9999: there is none
            return
        return
    calendar = (
        parse_crontab(spec["crontab"], schedule_zone(spec))
        if kind == "cron"
        else parse_calendar(spec["calendar"])
    )
    for moment in calendar.instants_after(start - timedelta(microseconds=1)):
        if moment > end:
            return
        yield moment
