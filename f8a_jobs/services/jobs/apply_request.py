"""The body of ``POST /jobs/apply`` parsed once: the jobs listed (each as ``POST /jobs`` takes
it, parsed by ``parse_job``), and the options. An error names its place in the list
(``jobs[3].periodically``), so a folder of job files says which file is wrong.

Parsing happens before the transaction opens: it is most of an apply's time, and no row is
locked meanwhile. A `when` in the past is kept for later: it is no error when it is the start
of the job stored (``apply``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from f8a_jobs.core.errors import F8aJobsError, InvalidInput, refuse_unknown
from f8a_jobs.core.fields import parse_labels
from f8a_jobs.core.names import addressable_name
from f8a_jobs.services.audit import parse_reason
from f8a_jobs.services.jobs.spec import JobSpec, parse_job

APPLY_KEYS = ("jobs", "prune", "prune_label", "dry_run", "reason")
MAX_JOBS = 100_000


@dataclass(frozen=True)
class Listed:
    """A job of the list: its place, its fields as given (but ``reason``), and the job they
    parse to, or the error parsing them raised about `when` (decided against the stored
    job)."""

    index: int
    job_id: str
    data: dict[str, Any]
    job: JobSpec | None
    error: InvalidInput | None
    reason: str | None

    def parsed(self) -> JobSpec:
        """The job, or the error parsing it raised."""
        if self.job is None:
            raise self.error or InvalidInput("when", "cannot be read")
        return self.job


@dataclass(frozen=True)
class Request:
    listed: list[Listed]
    prune: bool
    prune_label: str | None
    dry_run: bool


def parse_request(body: Any, now: datetime, check_group: Callable[[Any], None]) -> Request:
    """The request, or a 400 naming the field; ``now``: the time every job is parsed at
    (a job without `when` starts then)."""
    if not isinstance(body, Mapping):
        raise InvalidInput("body", "expected an object: jobs, prune, prune_label, dry_run")
    refuse_unknown(body, APPLY_KEYS)
    items = body.get("jobs")
    if not isinstance(items, list):
        raise InvalidInput("jobs", "required: a list of jobs, each as POST /jobs takes it")
    if len(items) > MAX_JOBS:
        raise InvalidInput("jobs", f"at most {MAX_JOBS} jobs a request, got {len(items)}")
    prune = _flag(body, "prune")
    label = body.get("prune_label")
    if label is not None:
        if not prune:
            raise InvalidInput("prune_label", "applies with prune: true")
        if not isinstance(label, str):
            raise InvalidInput("prune_label", f"expected a label, got {label!r}")
        [label] = parse_labels([label], "prune_label")
    return Request(_listed(items, now, check_group), prune, label, _flag(body, "dry_run"))


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise InvalidInput(name, f"expected true or false, got {value!r}")
    return value


def _listed(items: list[Any], now: datetime, check_group: Callable[[Any], None]) -> list[Listed]:
    """Each job parsed, in order; an id listed twice is refused at its second place."""
    first: dict[str, int] = {}
    listed = []
    for index, data in enumerate(items):
        if not isinstance(data, Mapping):
            raise InvalidInput(f"jobs[{index}]", f"expected a job, got {type(data).__name__}")
        with naming(f"jobs[{index}]"):
            item = _item(index, data, now, check_group)
        seen = first.setdefault(item.job_id, index)
        if seen != index:
            raise InvalidInput(
                f"jobs[{index}].job_id", f"{item.job_id!r} is listed already, as jobs[{seen}]"
            )
        listed.append(item)
    return listed


def _item(
    index: int, data: Mapping[str, Any], now: datetime, check_group: Callable[[Any], None]
) -> Listed:
    fields = dict(data)
    reason = parse_reason(fields.pop("reason", None))
    if fields.get("job_id") in (None, ""):
        raise InvalidInput("job_id", "required: apply finds the job to change by its id")
    job_id = addressable_name(fields["job_id"], "job_id")
    check_group(fields.get("group"))
    try:
        return Listed(index, job_id, fields, parse_job(fields, now), None, reason)
    except InvalidInput as error:
        if error.field != "when":
            raise
        return Listed(index, job_id, fields, None, error, reason)


@contextmanager
def naming(place: str) -> Iterator[None]:
    """An error about one job of the list names it first: ``jobs[3].periodically: …``. The
    error keeps its kind (a 403 stays a 403)."""
    try:
        yield
    except F8aJobsError as error:
        if error.field and error.detail.startswith(f"{error.field}:"):
            error.detail = f"{place}.{error.detail}"
        else:
            error.detail = f"{place}: {error.detail}"
        error.field = f"{place}.{error.field}" if error.field else place
        error.args = (error.detail,)
        raise
