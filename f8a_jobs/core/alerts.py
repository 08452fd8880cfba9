"""Alert targets as a job (or ``F8A_JOBS_ALERTS_DEFAULT``) names them: where to send
(``email`` or ``webhook``), on which events, and how often. Parsed once, stored as JSON."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from f8a_jobs.core.errors import InvalidInput, refuse_unknown
from f8a_jobs.core.fields import parse_duration

EVENTS = ("failure", "success", "recovery", "late", "missed", "timeout")
TARGET_KEYS = ("email", "webhook", "on", "format", "after_failures", "repeat_every", "late_after")
FORMATS = ("json", "slack")
MAX_TARGETS = 20
DEFAULT_ON = ("failure",)  # Datatailr's AlertOnlyFailures: the default of a target
DEFAULT_LATE_AFTER = 300  # seconds after its slot a run that has not started is late
# a plain address only: no quotes, comments, groups or brackets, which a mail header would read
# as something else than the address shown
EMAIL = re.compile(r"[^@\s<>,;:()\[\]\\\"\x00-\x1f\x7f]{1,64}@[A-Za-z0-9.-]{1,253}")
MASK = "/***"


def parse_targets(value: Any, field: str = "alerts") -> list[dict[str, Any]] | None:
    """A list of targets, each stored with every key spelled out (``None``: the job says
    nothing, so the service's default targets apply; ``[]``: no alerts at all)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidInput(field, f"expected a list of targets, got {value!r}")
    if len(value) > MAX_TARGETS:
        raise InvalidInput(field, f"at most {MAX_TARGETS} targets")
    return [_target(item, f"{field}[{n}]") for n, item in enumerate(value)]


def _target(item: Any, field: str) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise InvalidInput(field, f"expected an object with 'email' or 'webhook', got {item!r}")
    refuse_unknown(item, TARGET_KEYS, field)
    if ("email" in item) == ("webhook" in item):
        raise InvalidInput(field, "give exactly one of 'email' and 'webhook'")
    target: dict[str, Any] = {}
    if "email" in item:
        target["email"] = _address(item["email"], f"{field}.email")
    else:
        target["webhook"] = _url(item["webhook"], f"{field}.webhook")
    target["on"] = _events(item.get("on", list(DEFAULT_ON)), f"{field}.on")
    if "webhook" in item:
        target["format"] = item.get("format", "json")
    if "email" in item and "format" in item:
        raise InvalidInput(f"{field}.format", "an email target takes no format")
    if target.get("format", "json") not in FORMATS:
        raise InvalidInput(f"{field}.format", f"a webhook's is one of {', '.join(FORMATS)}")
    target["after_failures"] = _count(item.get("after_failures", 1), f"{field}.after_failures")
    repeat = item.get("repeat_every")
    target["repeat_every"] = (
        None if repeat is None else parse_duration(repeat, f"{field}.repeat_every")
    )
    late = item.get("late_after", DEFAULT_LATE_AFTER)
    target["late_after"] = parse_duration(late, f"{field}.late_after")
    return target


def _address(value: Any, field: str) -> str:
    if not isinstance(value, str) or not EMAIL.fullmatch(value):
        raise InvalidInput(field, f"{value!r} is not an email address (name@host)")
    return value


def _url(value: Any, field: str) -> str:
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
        host = parts.hostname if parts else None
    except ValueError:  # a malformed host or port ("http://[::1")
        parts = host = None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise InvalidInput(field, "expected an http:// or https:// URL")
    if len(value) > 2000 or re.search(r"[\s\x00-\x1f\x7f]", value):
        raise InvalidInput(field, "a URL of at most 2000 characters, no blanks")
    if MASK in parts.path:
        raise InvalidInput(field, "a masked URL ('/***…') of no stored target: give the whole URL")
    return str(value)


def _events(value: Any, field: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise InvalidInput(field, f"expected a list of events among {', '.join(EVENTS)}")
    for event in value:
        if event not in EVENTS:
            raise InvalidInput(field, f"{event!r} is not one of {', '.join(EVENTS)}")
    return list(dict.fromkeys(value))


def _count(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise InvalidInput(field, f"expected a whole number from 1 to 1000, got {value!r}")
    return value


def target_key(target: Mapping[str, Any]) -> str:
    """A target's identity (where it sends, how): an alert's key, and ``repeat_every``'s."""
    where = {name: target.get(name) for name in ("email", "webhook", "format")}
    return hashlib.sha256(json.dumps(where, sort_keys=True).encode()).hexdigest()[:16]


def masked_webhook(url: str) -> str:
    """A webhook URL as the API shows it: its host, and a short digest that tells two hooks
    of one host apart (a Slack hook's path is its secret, and a URL may hold a password)."""
    parts = urlsplit(url)
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{MASK}{digest}"


def masked_targets(targets: Any) -> Any:
    """A job's targets as the API shows them: webhooks masked."""
    if not isinstance(targets, list):
        return targets
    return [
        {**target, "webhook": masked_webhook(target["webhook"])} if "webhook" in target else target
        for target in targets
    ]


def kept_targets(written: Any, stored: Any) -> Any:
    """Targets a client writes back: a masked webhook it was shown keeps the stored URL."""
    if not isinstance(written, list) or not isinstance(stored, list):
        return written
    real = {masked_webhook(t["webhook"]): t["webhook"] for t in stored if "webhook" in t}

    def kept(target: Any) -> Any:
        url = target.get("webhook") if isinstance(target, Mapping) else None
        return {**target, "webhook": real[url]} if isinstance(url, str) and url in real else target

    return [kept(target) for target in written]


def shown_target(target: Mapping[str, Any]) -> str:
    """Where an alert goes, as a run shows it."""
    if "email" in target:
        return f"email {target['email']}"
    return f"webhook {masked_webhook(target['webhook'])}"
