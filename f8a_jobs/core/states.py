"""The states of jobs, runs, workflow tasks and flows: one enum each.

Each value is the text the database stores and the API shows. A ``StrEnum`` member equals its
text, so rows read back compare with the members as they are, and JSON shows the text.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"


class RunStatus(StrEnum):
    """``queued`` → ``running`` → ``succeeded`` | ``failed``; or ``missed``, or ``cancelled``."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    MISSED = "missed"
    CANCELLED = "cancelled"  # a workflow run, or a queued run, that the API cancelled


FINISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.MISSED, RunStatus.CANCELLED})


class Trigger(StrEnum):
    """What queued a run."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    BACKFILL = "backfill"
    AFTER = "after"


class TaskState(StrEnum):
    """A workflow task's (or one of its ``for_each`` parts') state."""

    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    SATISFIED = "satisfied"  # its check passed: nothing to execute
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream_failed"
    CANCELLED = "cancelled"


DONE = frozenset({TaskState.SUCCEEDED, TaskState.SATISFIED})
FINAL = DONE | {TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.CANCELLED}
WHOLE = -1  # the ``part`` of a task's own row; its for_each parts are 0…n-1


class FlowStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"  # the embedded dispatcher kept it
    SENT = "sent"  # a broker took it
    FAILED = "failed"  # the dispatcher refused it for good; the row's ``error`` says why
