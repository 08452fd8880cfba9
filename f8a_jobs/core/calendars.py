"""Calendar schedules: Datatailr's ``Schedule`` fields and five-field crontabs, in an IANA time
zone, evaluated by one small engine and used as an APScheduler 3 trigger.

A calendar names the minutes and hours of a day, the months, and which days: days of the month,
weekdays, and "the first/…/last Friday". Days match the way classic (Vixie) cron matches them:
the restricted day rules are alternatives (either matches); a crontab whose day-of-month or
day-of-week field starts with ``*`` needs both to match.

Local times meet daylight saving time the way people expect: a time that does not exist (the
clock springs forward over it) fires once, at the first instant after the gap; a time that
occurs twice (the clock falls back) fires once, at its first occurrence. Nothing is lost or
doubled: slots in local order map to instants that never go backwards.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger

from f8a_jobs.core.errors import InvalidInput, refuse_unknown

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # date.weekday() order
WHICH = {"First": 1, "Second": 2, "Third": 3, "Fourth": 4, "Fifth": 5, "Last": -1}
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SEARCH_DAYS = 146_097 + 1  # the Gregorian calendar repeats every 400 years, weekdays included
# Local clocks jump by at most a few hours: slots this far before "now" cannot fire after it.
DST_MARGIN = timedelta(hours=3)


@dataclass(frozen=True)
class Calendar:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    days_of_month: frozenset[int] | None  # None: not restricted
    weekdays: frozenset[int] | None  # 0 = Monday
    first_last: tuple[int, int] | None  # (weekday, 1…5 or -1 for the last)
    either: bool  # the restricted day rules are alternatives (else all must hold)
    zone: tzinfo

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        rules = []
        if self.days_of_month is not None:
            rules.append(day.day in self.days_of_month)
        if self.weekdays is not None:
            rules.append(day.weekday() in self.weekdays)
        if self.first_last is not None:
            rules.append(_is_nth_weekday(day, *self.first_last))
        if not rules:
            return True
        return any(rules) if self.either else all(rules)

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire instant (UTC) strictly after ``moment``; None if it never fires."""
        return next(self.instants_after(moment), None)

    def upcoming(self, moment: datetime, count: int) -> list[datetime]:
        return list(itertools.islice(self.instants_after(moment), count))

    def instants_after(self, moment: datetime) -> Iterator[datetime]:
        """Fire instants (UTC) after ``moment``, in order; slots that fall into one instant
        (a spring-forward gap) fire once."""
        try:
            floor = moment.astimezone(self.zone).replace(tzinfo=None, fold=0)
        except OverflowError:  # past the calendar's end in this zone
            return
        last = moment
        for naive in self.slots_from(_minus_margin(floor)):
            try:
                instant = local_instant(naive, self.zone)
            except OverflowError:  # a slot past the calendar's end (year 9999): none follow
                return
            if instant > last:
                last = instant
                yield instant

    def slots_from(self, floor: datetime) -> Iterator[datetime]:
        """Local slot times from ``floor`` on, in order, for one full 400-year cycle."""
        day = floor.date()
        for _ in range(SEARCH_DAYS):
            if self.day_matches(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        naive = datetime.combine(day, time(hour, minute))
                        if naive >= floor:
                            yield naive
            if day == date.max:  # the calendar ends with year 9999
                return
            day += timedelta(days=1)


def _minus_margin(local: datetime) -> datetime:
    return local - DST_MARGIN if local - datetime.min > DST_MARGIN else datetime.min


def _is_nth_weekday(day: date, weekday: int, which: int) -> bool:
    if day.weekday() != weekday:
        return False
    if which == -1:
        return (day + timedelta(days=7)).month != day.month
    return (day.day - 1) // 7 + 1 == which


def local_instant(naive: datetime, zone: tzinfo) -> datetime:
    """The UTC instant of a local wall time: its first occurrence, or for a time in a
    spring-forward gap the first instant after the gap."""
    if zone is UTC:
        return naive.replace(tzinfo=UTC)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)  # before the jump
    high, offset = first, first.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):  # the jump's instant, to the second
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


class CalendarTrigger(BaseTrigger):  # type: ignore[misc]
    """APScheduler 3's view of a calendar: the next slot after the previous fire time."""

    def __init__(self, calendar: Calendar, start: datetime | None = None) -> None:
        self.calendar = calendar
        self.start = start

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if previous_fire_time is not None:
            return self.calendar.next_after(previous_fire_time)
        after = max(now, self.start) if self.start else now
        return self.calendar.next_after(after - timedelta(microseconds=1))

    def __str__(self) -> str:
        return "calendar"


# --- reading them ---------------------------------------------------------------------------


def parse_zone(value: Any, field: str) -> tzinfo:
    if value in (None, "", "UTC"):
        return UTC
    if not isinstance(value, str):
        raise InvalidInput(
            field, f"expected an IANA time zone name such as 'Europe/Paris', got {value!r}"
        )
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            field, f"{value!r} is not an IANA time zone such as 'Europe/Paris'"
        ) from None


CALENDAR_KEYS = (
    "at_minutes",
    "every_minute",
    "at_hours",
    "every_hour",
    "weekdays",
    "day_of_month",
    "first_last",
    "in_months",
    "every_month",
    "timezone",
    "rundate_offset",
)


def parse_calendar(data: Any, field: str = "calendar") -> Calendar:
    """Datatailr's ``Schedule`` fields; an error names the field and the problem."""
    if not isinstance(data, dict):
        raise InvalidInput(field, f"expected an object of {', '.join(CALENDAR_KEYS)}")
    refuse_unknown(data, CALENDAR_KEYS, field)
    path = f"{field}."
    minutes = _picked(data, path, "at_minutes", "every_minute", 0, 59, [0])
    minutes_given = "at_minutes" in data or "every_minute" in data
    # Unset fields coarser than the finest one given mean "every" (cron's *), finer ones "0".
    hours = _picked(
        data, path, "at_hours", "every_hour", 0, 23, list(range(24)) if minutes_given else [0]
    )
    months = _picked(data, path, "in_months", "every_month", 1, 12, list(range(1, 13)), MONTH_NAMES)
    days = data.get("day_of_month")
    weekdays = data.get("weekdays")
    calendar = Calendar(
        minutes=tuple(minutes),
        hours=tuple(hours),
        months=frozenset(months),
        days_of_month=None
        if days is None
        else frozenset(_numbers(days, path + "day_of_month", 1, 31)),
        weekdays=None if weekdays is None else frozenset(_days(weekdays, path + "weekdays")),
        first_last=_first_last(data.get("first_last"), path + "first_last"),
        either=True,
        zone=parse_zone(data.get("timezone"), path + "timezone"),
    )
    rundate_offset(data, path)
    if calendar.next_after(datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise InvalidInput(
            field, "this calendar never fires (no such day in eight years, e.g. Feb 30)"
        )
    return calendar


def rundate_offset(data: dict[str, Any], path: str = "calendar.") -> int:
    value = data.get("rundate_offset", 0)
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 3660:
        raise InvalidInput(
            path + "rundate_offset", f"expected a whole number of days, got {value!r}"
        )
    return value


def _picked(
    data: dict[str, Any],
    path: str,
    at: str,
    every: str,
    low: int,
    high: int,
    default: list[int],
    names: tuple[str, ...] = (),
) -> list[int]:
    if at in data and every in data:
        raise InvalidInput(path + every, f"give either '{at}' or '{every}', not both")
    if every in data:
        step = data[every]
        if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= high - low + 1:
            raise InvalidInput(
                path + every, f"expected a step between 1 and {high - low + 1}, got {step!r}"
            )
        return list(range(low, high + 1, step))  # from the first value, as cron's */n
    if at in data:
        return sorted(set(_numbers(data[at], path + at, low, high, names)))
    return default


def _numbers(value: Any, field: str, low: int, high: int, names: tuple[str, ...] = ()) -> list[int]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise InvalidInput(field, "expected at least one value")
    found = []
    for item in items:
        if isinstance(item, str) and item[:3].title() in names:
            item = names.index(item[:3].title()) + low
        if isinstance(item, bool) or not isinstance(item, int) or not low <= item <= high:
            raise InvalidInput(field, f"expected whole numbers from {low} to {high}, got {item!r}")
        found.append(item)
    return found


def _days(value: Any, field: str) -> list[int]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise InvalidInput(field, "expected at least one weekday")
    return [_day(item, field) for item in items]


def _day(value: Any, field: str) -> int:
    if isinstance(value, str) and value[:3].title() in DAY_NAMES and value.isalpha():
        return DAY_NAMES.index(value[:3].title())
    raise InvalidInput(field, f"{value!r} is not a weekday: expected one of {', '.join(DAY_NAMES)}")


def _first_last(value: Any, field: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        value = {key.lower(): item for key, item in value.items()}  # Datatailr's Weekday, Which
    if not isinstance(value, dict) or set(value) != {"weekday", "which"}:
        raise InvalidInput(field, "expected {'weekday': 'Fri', 'which': 'First'…'Fifth' or 'Last'}")
    which = value["which"]
    if which not in WHICH:
        raise InvalidInput(f"{field}.which", f"{which!r} is not one of {', '.join(WHICH)}")
    return _day(value["weekday"], f"{field}.weekday"), WHICH[which]


# --- crontabs -------------------------------------------------------------------------------


def parse_crontab(expr: Any, zone: tzinfo = UTC, field: str = "cron") -> Calendar:
    """A five-field crontab as a calendar, with Vixie cron's day rule."""
    if not isinstance(expr, str) or len(expr.split()) != 5:
        raise InvalidInput(field, f"{expr!r} is not a five-field crontab such as '*/5 * * * *'")
    minute, hour, dom, month, dow = expr.lower().split()
    try:
        calendar = Calendar(
            minutes=tuple(sorted(_cron_field(minute, 0, 59))),
            hours=tuple(sorted(_cron_field(hour, 0, 23))),
            months=frozenset(_cron_field(month, 1, 12, MONTH_NAMES)),
            days_of_month=frozenset(_cron_field(dom, 1, 31)),
            weekdays=frozenset((day - 1) % 7 for day in _cron_field(dow, 0, 7, CRON_DAYS)),
            first_last=None,
            either=not (dom.startswith("*") or dow.startswith("*")),
            zone=zone,
        )
    except ValueError as error:
        raise InvalidInput(field, f"{expr!r}: {error}") from None
    if calendar.next_after(datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise InvalidInput(field, f"{expr!r} never fires (no such day, e.g. Feb 30)")
    return calendar


CRON_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


def _cron_field(text: str, low: int, high: int, names: tuple[str, ...] = ()) -> set[int]:
    """One crontab field: ``*``, ``a``, ``a-b``, any of them ``/step``, comma-separated."""
    values: set[int] = set()
    for part in text.split(","):
        span, slash, step_text = part.partition("/")
        step = _cron_number(step_text, 1, high - low + 1, ()) if slash else 1
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first_text, _, last_text = span.partition("-")
            first, last = (
                _cron_number(first_text, low, high, names),
                _cron_number(last_text, low, high, names),
            )
            if first > last:
                raise ValueError(f"range {span!r} runs backwards")
        else:
            first = _cron_number(span, low, high, names)
            last = high if slash else first
        values.update(range(first, last + 1, step))
    return values


def _cron_number(text: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if names and text[:3].title() in names and len(text) == 3:
        return names.index(text[:3].title()) + low
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{text!r} is not a number from {low} to {high}")
    return int(text)


def describe_slots(instants: Iterable[datetime], zone: tzinfo) -> list[dict[str, str]]:
    """Fire times as the API shows them: UTC, and local where the schedule has a zone."""
    return [
        {"utc": instant.isoformat(), "local": instant.astimezone(zone).isoformat()}
        for instant in instants
    ]
