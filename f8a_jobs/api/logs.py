"""``GET /jobs/{job_id}/runs/{run_id}/logs``: a run's (or a task's) log, a page at a time in
JSON or text, or followed live as server-sent events.

A follower holds one of the API's threads while its try runs: at most
``F8A_JOBS_LOG_FOLLOWERS`` at once per process, more are a 503 with ``Retry-After``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import flask

from f8a_jobs.api.auth import caller, readable
from f8a_jobs.api.context import Response, engine, reply
from f8a_jobs.core.access import READ, Caller
from f8a_jobs.core.errors import F8aJobsError, InvalidInput
from f8a_jobs.core.settings import get_settings
from f8a_jobs.services import access
from f8a_jobs.services.runs import log_view
from f8a_jobs.services.runs.logs import Query

POLL = 0.5  # seconds between a follower's reads
KEEP_ALIVE = 15.0  # a comment line this often, so a client that left is noticed
RECHECK = 5.0  # seconds between checks that the follower may still read the job
TEXT = "text/plain"


class TooManyFollowers(F8aJobsError):
    status = 503

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"follow: {limit} logs are followed on this server already "
            "(F8A_JOBS_LOG_FOLLOWERS); try again shortly, or read pages with `after`",
            "follow",
        )


_followers: threading.BoundedSemaphore | None = None
_followers_lock = threading.Lock()


def get_logs(job_id: str, run_id: str, **params: Any) -> Any:
    query = _query(run_id, params)
    readable(job_id)
    follow = params.get("follow", False)
    if follow:
        last_event = flask.request.headers.get("Last-Event-ID")
        if last_event:  # an EventSource reconnecting: on from the last event it received
            query = replace(query, after=_cursor(last_event, "Last-Event-ID"))
        return _follow(job_id, query)
    result = log_view.read(engine(), job_id, query)
    if _wants_text(params.get("format")):
        headers = {"Content-Type": TEXT}
        if result.next:
            headers["X-Next-Cursor"] = result.next
        return "".join(log_view.record_line(r) for r in result.records), 200, headers
    return _json(result)


def _json(result: log_view.Page) -> Response:
    return reply({"records": result.records, "next": result.next})


def _query(run_id: str, params: dict[str, Any]) -> Query:
    level = params.get("level")
    return Query(
        run_id=run_id,
        task=params.get("task"),
        part=params.get("part"),
        try_number=params.get("try"),
        attempt=params.get("attempt"),
        level=log_view.LEVELS[level.upper()] if level else 0,
        after=_cursor(params.get("after"), "after"),
        limit=params.get("limit", 1000),
    )


def _cursor(value: str | None, field: str) -> int:
    if value is None or value == "":
        return 0
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise InvalidInput(field, f"{value!r} is not a cursor: give the `next` of a page")
    return int(value)


def _wants_text(fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "text"
    accepted = flask.request.accept_mimetypes
    return accepted.best_match(["application/json", TEXT]) == TEXT and TEXT in accepted


def _follow(job_id: str, query: Query) -> Any:
    first = log_view.read(engine(), job_id, query)  # a 404 or 400 before the stream starts
    slots = _slots()
    if not slots.acquire(blocking=False):
        raise TooManyFollowers(get_settings().log_followers)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    stream = _events(job_id, query, first, slots, caller())
    return flask.Response(stream, 200, headers, mimetype="text/event-stream")


def _slots() -> threading.BoundedSemaphore:
    global _followers
    with _followers_lock:
        if _followers is None:
            _followers = threading.BoundedSemaphore(get_settings().log_followers)
        return _followers


def _events(
    job_id: str,
    query: Query,
    page: log_view.Page,
    slots: threading.BoundedSemaphore,
    who: Caller,
) -> Iterator[str]:
    """Each record as an event (its id the cursor), then ``end`` once the try has ended, or
    once the follower may no longer read the job (checked every ``RECHECK`` seconds)."""
    try:
        quiet_since = checked_at = time.monotonic()
        while True:
            for record, cursor in zip(page.records, page.cursors, strict=True):
                yield f"id: {cursor}\nevent: record\ndata: {json.dumps(record)}\n\n"
            if page.next is None:
                yield "event: end\ndata: {}\n\n"
                return
            if page.records:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > KEEP_ALIVE:
                quiet_since = time.monotonic()
                yield ": still running\n\n"
            query = log_view.after(query, page.next)
            if not page.records:
                time.sleep(POLL)  # the try runs and logged nothing new: read again soon
            try:
                if time.monotonic() - checked_at > RECHECK:
                    checked_at = time.monotonic()
                    with engine().connect() as connection:
                        access.check(connection, who, job_id, READ)
                page = log_view.read(engine(), job_id, query)
            except F8aJobsError as error:  # the run went (deleted), or the right, while followed
                yield f"event: end\ndata: {json.dumps({'error': error.detail})}\n\n"
                return
    finally:
        slots.release()
