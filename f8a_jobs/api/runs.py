"""``GET /runs``: search runs across jobs (those of the jobs the caller may read)."""

from __future__ import annotations

from f8a_jobs.api.auth import caller
from f8a_jobs.api.context import Response, engine, reply
from f8a_jobs.core.fields import parse_moment
from f8a_jobs.services.runs.search import RunSearch, search_runs

MOMENTS = ("scheduled_from", "scheduled_until", "finished_from", "finished_until")


def get_runs(limit: int = 100, label: list[str] | None = None, **filters: str) -> Response:
    fields = {name: value for name, value in filters.items() if name in RunSearch.__annotations__}
    moments = {name: parse_moment(fields[name], name) for name in MOMENTS if name in fields}
    labels = tuple(label or ())
    search = RunSearch(**{**fields, **moments}, labels=labels, limit=limit)  # type: ignore[arg-type]
    return reply(search_runs(engine(), search, caller()))
