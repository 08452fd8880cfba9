"""Operations on ``/jobs``: thin wrappers that call the job service and shape JSON."""

from __future__ import annotations

import json
from typing import Any

import connexion

from f8a_jobs.api.auth import actor, caller, identities
from f8a_jobs.api.context import Response, engine, reply
from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.states import JobState
from f8a_jobs.services import jobs, runs
from f8a_jobs.services.jobs import apply, bulk
from f8a_jobs.services.runs.backfill import backfill

JOB_TYPES = ("all", "user", "failed")


def get_jobs(
    job_type: str = "all",
    state: str | None = None,
    handler: str | None = None,
    limit: int = 100,
    offset: int = 0,
    full: bool = False,
    owner: str | None = None,
    group: str | None = None,
    label: list[str] | None = None,
) -> Response:
    """``failed`` lists failed runs; ``all`` and ``user`` list jobs (failed runs are not jobs),
    summaries unless ``full``; only those the caller may read."""
    if job_type not in JOB_TYPES:
        raise InvalidInput("job_type", f"{job_type!r} is not one of {', '.join(JOB_TYPES)}")
    if job_type == "failed":
        page, total = runs.list_failed(engine(), limit, offset, caller())
    else:
        labels = tuple(label or ())
        page, total = jobs.list_jobs(
            engine(), state, handler, limit, offset, full, owner, group, caller(), labels
        )
    return reply({"jobs": page, "jobs_count": len(page), "total": total})


def post_bulk_pause(body: dict[str, Any], reason: str | None = None) -> Response:
    why = actor(body.get("reason", reason))
    return reply(bulk.set_states(engine(), body, JobState.PAUSED, why))


def post_bulk_resume(body: dict[str, Any], reason: str | None = None) -> Response:
    why = actor(body.get("reason", reason))
    return reply(bulk.set_states(engine(), body, JobState.RUNNING, why))


def post_bulk_run(body: dict[str, Any], reason: str | None = None) -> Response:
    return reply(bulk.run_now(engine(), body, actor(body.get("reason", reason))), 202)


def post_apply(body: dict[str, Any], reason: str | None = None) -> Response:
    """Create, change (and with ``prune`` delete) many jobs in one transaction."""
    why = actor(body.get("reason", reason))
    return reply(apply.apply_jobs(engine(), body, why, identities().check_group))


def one_job(job: dict[str, Any], status: int = 200) -> Response:
    """The job, with its revision as the ETag that a PATCH sends back as If-Match."""
    body, status, headers = reply({"job": job}, status)
    return body, status, {**headers, "ETag": f'"{job["revision"]}"'}


def post_job(body: dict[str, Any], reason: str | None = None) -> Response:
    """The job's fields as the body; ``reason`` (query or body) goes to the audit trail."""
    fields = dict(body)
    why = fields.pop("reason", reason)
    return _create(fields, why)


def _create(fields: dict[str, Any], reason: Any) -> Response:
    identities().check_group(fields.get("group"))
    job = jobs.parse_job(fields)
    return one_job(jobs.create_job(engine(), job, actor(reason)), 201)


def post_flow_scheduling(body: dict[str, Any], **schedule: Any) -> Response:
    """With ``task_names`` (as the original README shows) this is selective flow scheduling."""
    handler = "SelectiveFlowScheduling" if "task_names" in body else "FlowScheduling"
    return _post_handler_job(handler, body, schedule)


def post_selective_flow_scheduling(body: dict[str, Any], **schedule: Any) -> Response:
    return _post_handler_job("SelectiveFlowScheduling", body, schedule)


def _post_handler_job(handler: str, kwargs: dict[str, Any], schedule: dict[str, Any]) -> Response:
    """The original endpoints: the job's other fields in the query string (the same names and
    errors as ``POST /jobs``), handler kwargs as the body."""
    fields = _decoded(schedule)
    reason = fields.pop("reason", None)
    return _create({**fields, "handler": handler, "kwargs": kwargs}, reason)


def _decoded(fields: dict[str, Any]) -> dict[str, Any]:
    """``calendar`` and ``after`` are objects: in a query string, JSON; ``after`` may also be
    just the other job's id (its successes)."""
    decoded = dict(fields)
    for name in ("calendar", "after"):
        value = decoded.get(name)
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                decoded[name] = json.loads(value)
            except json.JSONDecodeError as error:
                raise InvalidInput(name, f"not valid JSON: {error}") from None
    if isinstance(decoded.get("after"), str):
        decoded["after"] = {"job_id": decoded["after"]}
    return decoded


def get_job(job_id: str) -> Response:
    return one_job(jobs.get_job(engine(), job_id, caller()))


def put_job(job_id: str, state: str, reason: str | None = None) -> Response:
    return one_job(jobs.set_job_state(engine(), job_id, state, actor(reason)))


def patch_job(job_id: str, body: dict[str, Any], reason: str | None = None) -> Response:
    """Change fields of a job; ``If-Match`` (the ETag ``"<revision>"``, or the bare number) or a
    ``revision`` field guards it."""
    if_match = connexion.request.headers.get("if-match")
    changes = dict(body)
    why = changes.pop("reason", reason)
    identities().check_group(changes.get("group"))
    return one_job(jobs.patch_job(engine(), job_id, changes, if_match, actor(why)))


def post_backfill(job_id: str, body: dict[str, Any], reason: str | None = None) -> Response:
    request = dict(body)
    why = request.pop("reason", reason)
    return reply({"backfill": backfill(engine(), job_id, request, actor(why))}, 202)


def delete_job(job_id: str, reason: str | None = None) -> Response:
    jobs.delete_job(engine(), job_id, actor(reason))
    return reply({"job_id": job_id, "deleted": True})


def delete_failed(reason: str | None = None) -> Response:
    return reply({"removed": runs.clean_failed(engine(), actor(reason))})


def get_runs(
    job_id: str, limit: int = 100, offset: int = 0, started_by: str | None = None
) -> Response:
    page, total = runs.list_runs(engine(), job_id, limit, offset, started_by, caller())
    return reply({"runs": page, "total": total})
