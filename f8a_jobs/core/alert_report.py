"""What an alert says, and where its mail goes: pure values, no I/O.

An alert's report is a plain dict built elsewhere (the event, the run, its tasks, the last log
lines of its failed tries). This module turns it into what each channel carries: a short mail
(subject and plain text, like dagobah's), a Slack message, and the exact JSON bytes a webhook
posts with their HMAC signature. ``execution.delivery`` does the sending.

The SMTP server is one URL setting, ``F8A_JOBS_SMTP_URL``; ``parse_smtp_url`` checks it once
and never repeats its password in an error or a repr.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import parse_qsl, unquote, urlsplit

from f8a_jobs.core.errors import ConfigurationError

SETTING = "F8A_JOBS_SMTP_URL"
DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
SUBJECT_PREFIX = "[f8a-jobs]"
ERROR_CELL = 80  # characters of a task's error shown in the mail's table of tasks


@dataclass(frozen=True)
class SmtpServer:
    """Where alert mail goes: ``smtps`` is TLS from the start; ``smtp`` upgrades with STARTTLS
    when the server offers it."""

    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    sender: str


def parse_smtp_url(url: str) -> SmtpServer:
    """``smtp[s]://[user[:password]@]host[:port][?from=addr]`` as an ``SmtpServer``.

    Raises ``ConfigurationError`` naming ``F8A_JOBS_SMTP_URL`` and the problem; the message
    never quotes the password, nor the port (a URL missing its ``@`` puts the password there).
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        _refuse(f"the scheme is {scheme!r}, not smtp or smtps")
    try:
        host = parts.hostname
    except ValueError:  # a malformed host ("smtp://[::1")
        host = None
    if not host or any(char.isspace() for char in host):
        _refuse("the URL names no host")
    if parts.path not in ("", "/") or parts.fragment:
        _refuse("the URL has a path or a fragment; expected only user, host, port and ?from=")
    try:
        port = parts.port if parts.port is not None else DEFAULT_PORTS[scheme]
    except ValueError:  # not a number, or beyond 65535
        port = 0
    if not 0 < port < 65536:
        _refuse("the port is not a number from 1 to 65535")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return SmtpServer(scheme, host, port, username, password, _sender(parts.query, host))


def _sender(query: str, host: str) -> str:
    sender = f"f8a-jobs@{host}"
    seen: set[str] = set()
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key != "from":
            _refuse(f"unknown query parameter {key!r}; only from= is known")
        if key in seen:
            _refuse("from= is given twice")
        if "@" not in value or any(char in value for char in "\r\n<>, "):
            _refuse(f"from={value!r} is not a mail address")
        seen.add(key)
        sender = value
    return sender


def _refuse(problem: str) -> NoReturn:
    raise ConfigurationError(f"{SETTING}: {problem}", SETTING)


def signature(body: bytes, secret: str) -> str:
    """The ``X-F8A-Jobs-Signature`` of a webhook's body: a receiver that knows the secret
    recomputes it over the bytes it got, so it knows the post came from us, unchanged."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def body_bytes(report: dict[str, Any]) -> bytes:
    """The JSON a webhook posts: compact and with sorted keys, so the same report is the same
    bytes (the signature covers exactly these)."""
    text = json.dumps(report, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # A lone surrogate (from a log line) cannot be UTF-8; "\udxxx" is its JSON escape, so the
    # body stays valid JSON instead of the alert failing.
    return text.encode("utf-8", "backslashreplace")


def mail(report: dict[str, Any]) -> tuple[str, str]:
    """The subject and the plain-text body of a report's mail. Fields that are missing or
    None are left out, not shown empty."""
    sections = [
        _get(report, "summary"),
        _facts(report),
        _error(report),
        _tasks(report.get("tasks") or []),
        _failed_tries(report.get("failed_tries") or []),
        _line("link", _get(report, "url")),
    ]
    return _subject(report), "\n\n".join(section for section in sections if section) + "\n"


def _subject(report: dict[str, Any]) -> str:
    run_id, slot = _get(report, "run_id"), _get(report, "scheduled_for")
    which = f" (run {_short(run_id)})" if run_id else f" (slot {slot})" if slot else ""
    subject = f"{SUBJECT_PREFIX} {_get(report, 'event') or 'alert'}: {_get(report, 'job_id')}"
    return " ".join((subject + which).split())  # a header holds no line break


def _facts(report: dict[str, Any]) -> str:
    duration = report.get("duration_seconds")
    facts = [
        ("job", _get(report, "job_id")),
        ("run", _get(report, "run_id")),
        ("event", _get(report, "event")),
        ("status", _get(report, "status")),
        ("started by", _get(report, "started_by")),
        ("trigger", _get(report, "trigger")),
        ("slot", _get(report, "scheduled_for")),
        ("started", _get(report, "started_at")),
        ("finished", _get(report, "finished_at")),
        ("duration", _duration(duration) if duration is not None else ""),
    ]
    return "\n".join(_line(name, value) for name, value in facts if value)


def _error(report: dict[str, Any]) -> str:
    error = _get(report, "error")
    return "error:\n" + _indented(error.splitlines(), 2) if error else ""


def _tasks(tasks: list[dict[str, Any]]) -> str:
    if not tasks:
        return ""
    parts = any(task.get("part") is not None for task in tasks)
    header = (
        ("task", "part", "state", "tries", "error")
        if parts
        else ("task", "state", "tries", "error")
    )
    rows = [header] + [
        (
            _text(task.get("task")),
            *((_text(task.get("part")),) if parts else ()),
            _text(task.get("state")),
            _text(task.get("tries")),
            _first_line(_text(task.get("error")))[:ERROR_CELL],
        )
        for task in tasks
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "tasks:\n" + _indented([line.rstrip() for line in lines], 2)


def _failed_tries(tries: list[dict[str, Any]]) -> str:
    blocks = []
    for failed in tries:
        task = _text(failed.get("task"))
        title = f"{task}, try {failed.get('try')}" if task else f"try {failed.get('try')}"
        # a record with a traceback spans several lines: each is indented under its try
        lines = [part for line in failed.get("lines") or [] for part in _text(line).splitlines()]
        blocks.append(f"  {title}:\n" + (_indented(lines, 4) if lines else "    (no log lines)"))
    return "last log lines of the failed tries:\n" + "\n".join(blocks) if blocks else ""


def slack(report: dict[str, Any]) -> dict[str, str]:
    """A Slack incoming-webhook message: one mrkdwn paragraph saying what happened, to which
    run, the error's first line and the link. ``&``, ``<`` and ``>`` are escaped as Slack asks,
    so a job's text cannot forge a link or a mention."""
    run_id, status = _get(report, "run_id"), _get(report, "status")
    parts = [
        f"*{SUBJECT_PREFIX} {_escape(_get(report, 'event') or 'alert')}*:",
        f"job `{_escape(_get(report, 'job_id'))}`",
    ]
    if run_id:
        parts.append(f"run `{_escape(_short(run_id))}`")
    if status:
        parts.append(f"({_escape(status)})")
    text = " ".join(parts)
    summary = _get(report, "summary")
    if summary:
        text += f" — {_escape(summary)}"
    error = _first_line(_get(report, "error"))
    if error:
        text += f"\n> {_escape(error)}"
    url = _get(report, "url")
    if url:
        text += f"\n<{_escape(url)}|Open the run>"
    return {"text": text}


def _get(report: dict[str, Any], key: str) -> str:
    return _text(report.get(key))


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _line(name: str, value: str) -> str:
    return f"{name + ':':<12}{value}" if value else ""


def _indented(lines: list[str], spaces: int) -> str:
    return "\n".join(" " * spaces + line if line else "" for line in lines)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _short(run_id: str) -> str:
    return run_id if len(run_id) <= 8 else run_id[:8] + "…"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min {secs:02d} s" if hours else f"{minutes} min {secs:02d} s"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
