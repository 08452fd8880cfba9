"""What runs and workflow task rows hold, as this package hands them around: a run to queue or
claimed, how a run ended, one task row (``Unit``). Plain values, no I/O."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from f8a_jobs.core.fields import NORMAL
from f8a_jobs.core.json_values import storable_text
from f8a_jobs.core.policy import BUFFER_ONE, PAUSED_NOTE, RunPolicy
from f8a_jobs.core.states import RunStatus, TaskState, Trigger
from f8a_jobs.services.runs.logs import LastRecords
from f8a_jobs.storage.tables import job_runs

IN_BROKER = ""  # a remote run's (or try's) worker while its message waits in the broker
ERROR_LIMIT = 8_000
TRACEBACK_LIMIT = 64_000
RUN_COLUMNS = tuple(column.name for column in job_runs.columns)
# Read once, for the hot loops: an enum member is a class-attribute lookup per use.
QUEUED, FAILED, SCHEDULE = RunStatus.QUEUED, RunStatus.FAILED, Trigger.SCHEDULE
BACKFILL = Trigger.BACKFILL


def new_run_id() -> str:
    """32 hex digits: time first, so ids of a job's runs sort roughly by start."""
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"


def run_row(job_id: str, scheduled_for: datetime, status: str, **values: Any) -> dict[str, Any]:
    row = dict.fromkeys(RUN_COLUMNS)
    row.update(values, run_id=new_run_id(), job_id=job_id, scheduled_for=scheduled_for)
    row.update(status=status, trigger=values.get("trigger", SCHEDULE))
    row["started_by"] = values.get("started_by", SCHEDULE)  # else user:<name>, after:<job_id>
    row["priority"] = values.get("priority", NORMAL)
    return row


def missed_row(
    job_id: str, scheduled: list[datetime], reason: str, **values: Any
) -> dict[str, Any]:
    """One ``missed`` row standing for ``len(scheduled)`` runs that will not happen."""
    if len(scheduled) > 1:
        reason += f" ({len(scheduled)} runs from {scheduled[0].isoformat()} to {scheduled[-1].isoformat()})"
    return run_row(
        job_id, scheduled[0], RunStatus.MISSED, error=reason, missed_count=len(scheduled), **values
    )


@dataclass
class Fire:
    """APScheduler found a job due at ``run_times`` (oldest first)."""

    job_id: str
    run_times: tuple[datetime, ...]
    grace_seconds: int
    handler: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] | None = None
    labels: list[str] | None = None  # copied onto its runs
    priority: int = NORMAL

    @property
    def copied(self) -> dict[str, Any]:
        """What each of its runs' rows copies from the job."""
        return {"labels": self.labels or None, "priority": self.priority}


@dataclass(frozen=True)
class Claimant:
    """An executor that takes up to ``room`` of the runs a fire queues, as it queues them:
    they are inserted already claimed, saving a claim's round trips."""

    owner: str
    room: int
    worker: str | None = None  # IN_BROKER for a remote executor


@dataclass(slots=True)
class ClaimedRun:
    """A run this process now runs: what its handler needs, and the claim that fences it."""

    run_id: str
    job_id: str
    scheduled_for: datetime
    handler: str
    kwargs: dict[str, Any]
    epoch: int
    owner: str
    workflow: dict[str, Any] | None = None  # a workflow job's tasks: the runner runs it
    resumed: bool = False  # a workflow run queued again (retried): its graph is stored
    policy: dict[str, Any] | None = None  # tries, delays, timeout (core/policy.py)
    tries: int = 1  # this try's number
    trigger: str = Trigger.SCHEDULE  # what queued it

    @property
    def holds_back(self) -> bool:
        """Whether a queued run of its job may wait for this one to end (``claim``: a
        backfill's next slot, a run buffered by ``overlap: buffer_one``), so its end should
        wake the claimer rather than leave that run to the next poll."""
        return self.trigger == BACKFILL or (self.policy or {}).get("overlap") == BUFFER_ONE


@dataclass
class Outcome:
    """How a claimed run ended, with what it produced."""

    run: ClaimedRun
    status: str
    finished_at: datetime
    started_at: datetime | None = None  # when the handler started (after the claim)
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    flows: list[dict[str, Any]] = field(default_factory=list)
    log: LastRecords | None = None  # its try's records not written yet: written with it

    @property
    def retry_at(self) -> datetime | None:
        """When the next try starts, for a failed try with tries left."""
        if self.status != FAILED:
            return None
        return RunPolicy.of(self.run.policy).retry_at(self.run.tries, self.finished_at)

    @property
    def pauses_job(self) -> bool:
        return (
            self.status == FAILED
            and self.retry_at is None
            and RunPolicy.of(self.run.policy).pause_on_failure
        )

    def row(self) -> dict[str, Any]:
        failed = self.status == FAILED
        retry_at = self.retry_at
        error = self.error
        if retry_at is not None:
            error = (
                f"try {self.run.tries} failed, the next starts at {retry_at.isoformat()}: {error}"
            )
        elif self.pauses_job:
            error = f"{error}{PAUSED_NOTE}"
        return {
            "run_id": self.run.run_id,
            "owner": self.run.owner,
            "epoch": self.run.epoch,
            "tries": self.run.tries,
            "status": QUEUED if retry_at is not None else self.status,
            "not_before": retry_at,
            "started_at": self.started_at,
            "finished_at": None if retry_at is not None else self.finished_at,
            "result": self.result,
            "error": storable_text(error, ERROR_LIMIT),
            "traceback": storable_text(self.traceback, TRACEBACK_LIMIT),
            "handler": self.run.handler if failed else None,
            "kwargs": self.run.kwargs if failed else None,
        }


@dataclass(slots=True)
class Unit:
    """One ``run_tasks`` row: a workflow task (part ``WHOLE``) or one of its ``for_each``
    parts. The workflow engine changes units in memory; ``tasks`` writes them."""

    run_id: str
    task: str
    part: int
    state: str = TaskState.PENDING
    tries: int = 0
    ready_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    finished_seq: int | None = None
    executed: bool = False
    epoch: int | None = None
    owner: str | None = None
    heartbeat_at: datetime | None = None
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    item: Any = None  # a for_each part's item
    worker: str | None = None  # remote tries: IN_BROKER, then the worker running it
    reported: Any = None  # a remote try's outcome until it is applied (always None here)

    @property
    def key(self) -> tuple[str, int]:
        return self.task, self.part

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in Unit.__slots__}
