"""A job's definition, parsed once at the edge (the API, a YAML file) into one typed value,
``JobSpec``: its work (a handler call or a workflow), its schedule and its policy. Errors name
the field; the rest of the service takes a ``JobSpec`` as it is."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from f8a_jobs.core.access import DEFAULT_PERMISSIONS, parse_name, parse_permissions
from f8a_jobs.core.alerts import parse_targets
from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.errors import InvalidInput, refuse_unknown
from f8a_jobs.core.fields import (
    NORMAL,
    parse_duration,
    parse_labels,
    parse_metadata,
    parse_priority,
)
from f8a_jobs.core.json_values import MAX_DEPTH, depth_exceeds
from f8a_jobs.core.names import addressable_name
from f8a_jobs.core.policy import DEFAULT, POLICY_KEYS, RunPolicy, parse_policy
from f8a_jobs.core.schedules import first_run_time, parse_schedule
from f8a_jobs.core.settings import get_settings
from f8a_jobs.core.states import JobState
from f8a_jobs.handlers.entrypoints import is_entrypoint
from f8a_jobs.handlers.registry import handler_at
from f8a_jobs.services.workflows.spec import WorkflowSpec, image_queue, parse_workflow

SCHEDULE_KEYS = (
    "when",
    "periodically",
    "cron",
    "calendar",
    "timezone",
    "after",
    "manual",
    "misfire_grace_time",
    "state",
)
WORKFLOW_KEYS = ("tasks", "max_concurrent", "timeout")
POLICY_ONLY_KEYS = tuple(key for key in POLICY_KEYS if key not in WORKFLOW_KEYS)
ACCESS_KEYS = ("owner", "group", "permissions")
LABEL_KEYS = ("labels", "priority", "alerts", "metadata")
JOB_KEYS = (
    "job_id",
    "handler",
    "entrypoint",
    "kwargs",
    *WORKFLOW_KEYS,
    *POLICY_ONLY_KEYS,
    *SCHEDULE_KEYS,
    *ACCESS_KEYS,
    *LABEL_KEYS,
)


@dataclass(frozen=True)
class HandlerCall:
    """A plain job's work: a handler and the kwargs of its ``execute``."""

    handler: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class JobSpec:
    """A validated job, ready to be stored."""

    job_id: str
    work: HandlerCall | WorkflowSpec
    schedule: dict[str, Any]  # the versioned spec the ``jobs.schedule`` column stores
    state: JobState
    misfire_grace_time: int
    policy: RunPolicy = DEFAULT
    source: str = "api"
    source_hash: str | None = None
    owner: str | None = None  # None: the caller (``ownership``), or the system (YAML files)
    group: str | None = None
    permissions: str = DEFAULT_PERMISSIONS
    labels: tuple[str, ...] = ()
    priority: int = NORMAL
    alerts: list[dict[str, Any]] | None = None  # None: the service's default targets
    metadata: dict[str, Any] | None = None  # kept and shown, not acted on (``parse_metadata``)

    @property
    def handler(self) -> str:
        return self.work.handler if isinstance(self.work, HandlerCall) else ""

    @property
    def kwargs(self) -> dict[str, Any]:
        return self.work.kwargs if isinstance(self.work, HandlerCall) else {}

    @property
    def workflow(self) -> WorkflowSpec | None:
        return self.work if isinstance(self.work, WorkflowSpec) else None

    def row(self, now: datetime) -> dict[str, Any]:
        """The ``jobs`` row (but ``revision`` and ``created_at``, which a write sets)."""
        running = self.state == JobState.RUNNING
        workflow = self.workflow
        return {
            "job_id": self.job_id,
            "handler": self.handler,
            "kwargs": self.kwargs,
            "workflow": workflow.json() if workflow else None,
            "policy": self.policy.json(),
            "schedule": self.schedule,
            "after_job": self.schedule["job_id"] if self.schedule["type"] == "after" else None,
            "state": self.state,
            "misfire_grace_time": self.misfire_grace_time,
            "next_run_time": first_run_time(self.schedule) if running else None,
            "source": self.source,
            "source_hash": self.source_hash,
            "updated_at": now,
            "owner": self.owner or get_settings().system_owner,
            "group_name": self.group,
            "permissions": self.permissions,
            "labels": list(self.labels),
            "priority": self.priority,
            "alerts": self.alerts,
            "metadata": self.metadata or None,
        }


def parse_job(data: Mapping[str, Any], now: datetime | None = None, source: str = "api") -> JobSpec:
    """Validate a job as the API or a YAML file gives it; errors name the field."""
    if not isinstance(data, Mapping):
        raise InvalidInput("body", f"expected an object, got {type(data).__name__}")
    refuse_unknown(data, JOB_KEYS)
    now = now or utcnow()
    metadata = parse_metadata(data.get("metadata"))
    data = _image_queue(data, metadata)
    work = _work(data)
    grace = data.get("misfire_grace_time")
    return JobSpec(
        job_id=_job_id(data.get("job_id")),
        work=work,
        schedule=parse_schedule(
            data.get("when"),
            data.get("periodically"),
            data.get("cron"),
            now,
            data.get("calendar"),
            data.get("timezone"),
            data.get("after"),
            data.get("manual"),
        ),
        state=parse_state(data.get("state") or JobState.RUNNING),
        misfire_grace_time=(
            get_settings().misfire_grace_time
            if grace in (None, "")
            else parse_duration(grace, "misfire_grace_time")
        ),
        source=source,
        policy=parse_policy(data, isinstance(work, WorkflowSpec)),
        owner=parse_name(data.get("owner"), "owner", optional=True),
        group=parse_name(data.get("group"), "group", optional=True),
        permissions=parse_permissions(data.get("permissions", DEFAULT_PERMISSIONS)),
        labels=parse_labels(data.get("labels")),
        priority=parse_priority(data.get("priority")),
        alerts=parse_targets(data.get("alerts")),
        metadata=metadata,
    )


def _image_queue(data: Mapping[str, Any], metadata: dict[str, Any]) -> Mapping[str, Any]:
    """A plain job whose metadata names an ``Image`` the operator maps to a worker queue
    (``F8A_JOBS_IMAGE_QUEUES``) runs there, unless it names its ``queue``."""
    queue = image_queue(metadata)
    if queue is None or "queue" in data or "tasks" in data:
        return data
    return {**data, "queue": queue}


def _work(data: Mapping[str, Any]) -> HandlerCall | WorkflowSpec:
    """A handler with its kwargs, or a workflow's tasks: exactly one of them."""
    if "entrypoint" in data:
        if "handler" in data:
            raise InvalidInput("entrypoint", "give either 'handler' or 'entrypoint', not both")
        data = {**data, "handler": _entrypoint(data["entrypoint"], "entrypoint")}
    if "tasks" in data:
        for key in ("handler", "kwargs"):
            if key in data:
                raise InvalidInput(key, "a job has either 'tasks' or 'handler' and 'kwargs'")
        return parse_workflow(data["tasks"], data.get("max_concurrent"), data.get("timeout"))
    if "max_concurrent" in data:
        raise InvalidInput("max_concurrent", "applies to a workflow: a job with 'tasks'")
    handler = data.get("handler")
    if not isinstance(handler, str) or not handler:
        raise InvalidInput("handler", "required: the name of a registered handler (or 'tasks')")
    kwargs = data.get("kwargs", {})
    if depth_exceeds(kwargs):
        raise InvalidInput("kwargs", f"nested more than {MAX_DEPTH} levels deep")
    handler_at(handler, "entrypoint" if "entrypoint" in data else "handler").validate(kwargs)
    return HandlerCall(handler, kwargs)


def _entrypoint(value: Any, field: str) -> str:
    """An ``entrypoint`` is a handler named by its dotted path (``pkg.module.function``)."""
    if not isinstance(value, str) or not is_entrypoint(value):
        raise InvalidInput(field, f"{value!r} is not a dotted path such as 'pkg.module.function'")
    return value


def _job_id(value: Any) -> str:
    if value in (None, ""):
        return uuid.uuid4().hex
    return addressable_name(value, "job_id")


STATES = tuple(JobState)


def parse_state(value: Any) -> JobState:
    if value not in STATES:
        raise InvalidInput("state", f"{value!r} is not one of {', '.join(JobState)}")
    return JobState(value)
