"""Field parsers shared by every definition a user writes: durations, counts, factors and
queue names. Each error names the field and the value."""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime
from typing import Any

from pytimeparse import parse as parse_timespan

from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.json_values import MAX_DEPTH, depth_exceeds

QUEUE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
DAY = 86400
YEAR = 365 * DAY  # a duration counts seconds, not calendar dates: a year is 365 days
MONTH = 30 * DAY  # and a month 30
MAX_DURATION = 100 * YEAR  # the longest duration any field takes
LONGEST = f"{MAX_DURATION / YEAR:g} years"
# Years and months in front of what pytimeparse reads ("1 year, 2 months 3 days"); it has no
# units longer than a week.
LONG_UNITS = re.compile(
    r"(?:(?P<years>\d+(?:\.\d+)?)\s*(?:y|yrs?|years?)\b\s*[,/]?\s*)?"
    r"(?:(?P<months>\d+(?:\.\d+)?)\s*(?:mos?|mths?|months?)\b\s*[,/]?\s*)?"
    r"(?P<rest>.*)",
    re.IGNORECASE | re.DOTALL,
)


MAX_LABELS = 50
LABEL = re.compile(r"[^\x00-\x1f\x7f,]{1,64}")


def parse_labels(value: Any, field: str = "labels") -> tuple[str, ...]:
    """A list of labels, or Datatailr's comma-separated text (``"nightly, finance"``): each 1
    to 64 characters, no commas or control characters; repeats dropped, order kept."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise InvalidInput(
            field, f"expected a list of labels or a comma-separated text, got {value!r}"
        )
    labels = items
    if isinstance(value, str):  # the text's blanks around commas, and empty parts, are not labels
        labels = [part.strip() for part in items if part.strip()]
    for label in labels:
        if not isinstance(label, str) or not LABEL.fullmatch(label):
            raise InvalidInput(field, f"{label!r}: a label is 1 to 64 characters, no commas")
    if len(set(labels)) > MAX_LABELS:
        raise InvalidInput(field, f"at most {MAX_LABELS} labels")
    return tuple(dict.fromkeys(labels))


MAX_METADATA_BYTES = 16 * 1024


def parse_metadata(value: Any, field: str = "metadata") -> dict[str, Any]:
    """Facts the author keeps with a job or task that the service shows but does not act on
    (Datatailr's ``Image``, ``CPU``, ``Memory``…): a JSON object of at most 16 KiB."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(field, f"expected an object, got {type(value).__name__}")
    if depth_exceeds(value):
        raise InvalidInput(field, f"nested more than {MAX_DEPTH} levels deep")
    try:
        size = len(json.dumps(value))
    except (TypeError, ValueError) as error:
        raise InvalidInput(field, f"not a JSON object: {error}") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidInput(field, f"at most {MAX_METADATA_BYTES} bytes of JSON, got {size}")
    return value


def parse_moment(value: Any, field: str) -> datetime:
    """An ISO 8601 date and time, in UTC (a naive one is UTC)."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"expected an ISO 8601 date and time, got {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(field, f"cannot read {value!r} as an ISO 8601 date and time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_duration(value: Any, field: str) -> int:
    """ "1 week", "5:00:00", "90 seconds", "1 year" or a number of seconds -> whole seconds."""
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int | float):
        seconds = value
    elif isinstance(value, str):
        seconds = timespan(value.strip())
        if seconds is None and value.strip().isdigit():
            seconds = int(value.strip())
    else:
        seconds = None
    if seconds is None:
        raise InvalidInput(
            field,
            f"cannot read {value!r} as a duration such as '1 week', '5:00:00' or '90 seconds'",
        )
    if not 1 <= seconds <= MAX_DURATION:
        raise InvalidInput(field, f"{value!r} is not a duration from 1 second to {LONGEST}")
    return int(seconds)


@functools.lru_cache(maxsize=1024)
def timespan(text: str) -> float | None:
    """pytimeparse's seconds, with years (365 days) and months (30 days) read too. Cached:
    a thousand jobs applied at once say "1 day" a thousand times, and pytimeparse tries a
    dozen regular expressions each time."""
    long = LONG_UNITS.fullmatch(text)
    if long is None or not (long["years"] or long["months"]):
        return parse_timespan(text)  # type: ignore[no-any-return]
    rest = parse_timespan(long["rest"]) if long["rest"] else 0
    if rest is None:
        return None
    return float(long["years"] or 0) * YEAR + float(long["months"] or 0) * MONTH + rest


def parse_seconds(value: Any, path: str, zero: bool = False) -> float:
    """A duration ("30 seconds", "0.5", 1.5) in seconds, fractions allowed."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        parsed = timespan(text)
        seconds = float(parsed) if parsed is not None else _float(text)
    if seconds is None:
        raise InvalidInput(
            path, f"cannot read {value!r} as a duration such as '30 seconds', '0.5' or '1:00:00'"
        )
    if not 0 <= seconds <= MAX_DURATION or (seconds == 0 and not zero):  # NaN is neither
        shortest = "0 seconds" if zero else "more than 0 seconds"
        raise InvalidInput(path, f"{value!r} is not a duration from {shortest} to {LONGEST}")
    return seconds


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def seconds_or(value: Any, path: str, default: float | None, zero: bool = False) -> Any:
    return default if value in (None, "") else parse_seconds(value, path, zero)


def whole_number(value: Any, path: str, default: int, limit: int = 100_000) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise InvalidInput(path, f"{value!r} must be a whole number from 1 to {limit}")
    return value


def backoff_factor(value: Any, path: str) -> float:
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 100:
        raise InvalidInput(path, f"{value!r} must be a factor from 1 to 100")
    return float(value)


def queue_name(value: Any, path: str) -> str | None:
    """A broker queue's name (remote execution), or None for the default queue."""
    if value is None:
        return None
    if not isinstance(value, str) or not QUEUE_NAME.fullmatch(value):
        raise InvalidInput(
            path, f"{value!r}: a queue name is 1 to 200 letters, digits and '_', '-', '.', ':'"
        )
    return value


# Priorities as stored (higher starts first); ``lowest`` is a backfill's unless it says.
PRIORITIES = {"lowest": 0, "low": 1, "normal": 2, "high": 3}
PRIORITY_NAMES = {number: name for name, number in PRIORITIES.items()}
NORMAL, LOWEST = PRIORITIES["normal"], PRIORITIES["lowest"]
CHOSEN = ("low", "normal", "high")  # what a job or a task may say


def parse_priority(value: Any, field: str = "priority", choices: tuple[str, ...] = CHOSEN) -> int:
    """Datatailr's ``Priority`` (``LOW``, ``NORMAL``, ``HIGH``, any case) as stored."""
    if value is None:
        return NORMAL
    if not isinstance(value, str) or value.lower() not in choices:
        raise InvalidInput(field, f"{value!r} is not one of {', '.join(choices)}")
    return PRIORITIES[value.lower()]
