"""The one root of f8a-jobs errors; each carries the field and the value it is about.

The API turns these into HTTP responses in one place (``f8a_jobs.api.errors``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class F8aJobsError(Exception):
    """Root of every error the service raises on purpose."""

    status = 500

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class ConfigurationError(F8aJobsError):
    """A setting (environment variable) has an unusable value."""


class InvalidInput(F8aJobsError):
    """A request or a default job file holds a value the service cannot accept."""

    status = 400

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", field)


class JobNotFound(F8aJobsError):
    status = 404

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job_id: no job with id {job_id!r}", "job_id")


class Unauthenticated(F8aJobsError):
    status = 401


class Forbidden(F8aJobsError):
    """The caller may see what they asked about, but lacks the right to change it."""

    status = 403

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", field)


class DuplicateJob(F8aJobsError):
    status = 409

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job_id: a job with id {job_id!r} already exists", "job_id")


class JobsConflict(F8aJobsError):
    """A write to many jobs met another one: it changed nothing, and may be tried again."""

    status = 409

    def __init__(self, problem: str) -> None:
        super().__init__(f"jobs: {problem}", "jobs")


class RunNotFound(F8aJobsError):
    status = 404

    def __init__(self, job_id: str, run_id: str) -> None:
        super().__init__(f"run_id: job {job_id!r} has no run {run_id!r}", "run_id")


class RunConflict(F8aJobsError):
    status = 409

    def __init__(self, run_id: str, problem: str) -> None:
        super().__init__(f"run_id: {run_id}: {problem}", "run_id")


class StaleRevision(F8aJobsError):
    status = 409

    def __init__(self, job_id: str, expected: int, current: int) -> None:
        super().__init__(
            f"revision: job {job_id!r} is at revision {current}, not {expected}: read it again",
            "revision",
        )


class JobInUse(F8aJobsError):
    status = 409

    def __init__(
        self, job_id: str, users: list[str], how: str = "runs inside the workflows"
    ) -> None:
        names = ", ".join(repr(name) for name in users)
        super().__init__(f"job_id: job {job_id!r} {how} {names}", "job_id")


class UnknownHandler(InvalidInput):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__("handler", f"unknown handler {name!r}; known: {', '.join(known)}")


class InvalidHandler(F8aJobsError):
    """A plugin registered under ``f8a_jobs.handlers`` is not a ``BaseHandler`` subclass."""


class ForbiddenTable(InvalidInput):
    """A ``$filter`` names a table the operator did not allow it to read."""

    status = 403


def refuse_unknown(
    data: Mapping[Any, Any], known: tuple[str, ...], path: str = "", noun: str = "field"
) -> None:
    """A 400 naming the first key of ``data`` that is not one of ``known`` (under ``path``)."""
    unknown = sorted(str(key) for key in set(data) - set(known))
    if unknown:
        field = f"{path}.{unknown[0]}" if path else unknown[0]
        raise InvalidInput(field, f"unknown {noun}; expected some of {', '.join(known)}")
