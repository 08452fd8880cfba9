"""The service's own tables. Alembic migrations in ``migrations/`` create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json = JSON().with_variant(JSONB(), "postgresql")
# Python None as SQL NULL (not JSON null), for columns queried with IS NULL
NullableJson = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

OWN_TABLES = (
    "jobs",
    "job_runs",
    "run_tasks",
    "flow_outbox",
    "service_state",
    "leadership",
    "run_logs",
    "audit_log",
    "job_labels",
    "alerts",
    "alembic_version",
)

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", String(255), primary_key=True),
    Column("handler", String(255), nullable=False),  # "" for a workflow
    Column("kwargs", Json, nullable=False),
    Column(
        "workflow", NullableJson, nullable=True
    ),  # tasks, max_concurrent, timeout (workflows/spec.py)
    Column("policy", NullableJson, nullable=True),  # tries, delays, timeout… (runs/policy.py)
    Column("after_job", String(255), nullable=True),  # runs after this job's runs (schedule)
    Column("schedule", Json, nullable=False),  # versioned trigger spec, see schedules.py
    Column("state", String(16), nullable=False),
    Column("misfire_grace_time", Integer, nullable=False),
    Column("next_run_time", UTCDateTime, nullable=True),  # NULL: paused or finished
    Column("last_run", UTCDateTime, nullable=True),
    Column("source", String(255), nullable=False),  # "api" or the default job file name
    Column("source_hash", String(64), nullable=True),
    Column("revision", Integer, nullable=False),  # bumped by every edit; guards the scheduler
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("owner", String(128), nullable=False),  # a user (core/access.py)
    Column("group_name", String(128), nullable=True),  # the API's "group"
    Column("permissions", String(6), nullable=False),  # rwrwr-: owner, group, others
    Column("labels", NullableJson, nullable=True),  # as shown; job_labels indexes them
    Column("priority", SmallInteger, nullable=False, server_default="2"),  # core/fields.py
    Column("alerts", NullableJson, nullable=True),  # targets (core/alerts.py); NULL: defaults
    Column("metadata", NullableJson, nullable=True),  # kept and shown, never acted on
    Index("ix_jobs_next_run_time", "next_run_time"),
    Index("ix_jobs_owner", "owner"),
    Index("ix_jobs_group_name", "group_name"),
    Index("ix_jobs_handler", "handler"),
    Index("ix_jobs_after_job", "after_job"),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("job_id", String(255), nullable=False),
    Column("trigger", String(16), nullable=False),  # schedule|manual
    Column("status", String(16), nullable=False),  # queued|running|succeeded|failed|missed
    Column("scheduled_for", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("epoch", Integer, nullable=True),  # the leader term that started it
    Column("owner", String(128), nullable=True),  # the process that runs it
    Column("heartbeat_at", UTCDateTime, nullable=True),  # that process still runs it
    Column("handler", String(255), nullable=True),
    Column("kwargs", Json, nullable=True),  # kept for failed runs, to reproduce them
    Column("result", Json, nullable=True),  # what execute returned (bounded JSON)
    Column("error", Text, nullable=True),
    Column("traceback", Text, nullable=True),
    Column("missed_count", Integer, nullable=True),  # a missed row may stand for many runs
    Column(
        "graph", NullableJson, nullable=True
    ),  # a workflow run's expanded tasks, fixed at its start
    Column("cancel_requested", Boolean, nullable=True),  # the API asked a workflow run to stop
    Column("tries", Integer, nullable=True),  # tries started (a plain job's retries)
    Column("not_before", UTCDateTime, nullable=True),  # a retry waits until then
    # remote runs: "" while the message waits in the broker, then the worker that runs it
    Column("worker", String(255), nullable=True),
    Column("attempts", NullableJson, nullable=True),  # a retried run's earlier attempts
    # schedule | user:<name> | after:<job_id> (NULL: recorded before it was kept)
    Column("started_by", String(160), nullable=True),
    Column("labels", NullableJson, nullable=True),  # the job's when the run was queued
    Column("priority", SmallInteger, nullable=False, server_default="2"),  # higher starts first
    # One run per job and slot; also the index of a job's runs in time order.
    UniqueConstraint("job_id", "scheduled_for", "trigger", name="uq_job_runs_slot"),
    Index("ix_job_runs_status", "status", "scheduled_for"),
    Index("ix_job_runs_scheduled", "scheduled_for", "run_id"),  # GET /runs, newest first
)
# claims take the highest priority first, then the oldest slot
Index("ix_job_runs_claim", job_runs.c.status, job_runs.c.priority.desc(), job_runs.c.scheduled_for)

run_tasks = Table(
    "run_tasks",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("task", String(1024), primary_key=True),  # the name in the expanded graph
    Column("part", Integer, primary_key=True),  # -1: the task; 0…n-1: its for_each parts
    Column("state", String(16), nullable=False),  # see workflows/__init__.py
    Column("tries", Integer, nullable=False),  # tries started
    Column("ready_at", UTCDateTime, nullable=True),  # ready since, or a retry's earliest start
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("finished_seq", Integer, nullable=True),  # completion order: cleanup unwinds it
    Column("executed", Boolean, nullable=False),  # execute ran (so cleanup is due)
    Column("epoch", Integer, nullable=True),
    Column("owner", String(128), nullable=True),
    Column("heartbeat_at", UTCDateTime, nullable=True),
    Column("result", Json, nullable=True),
    Column("error", Text, nullable=True),
    Column("traceback", Text, nullable=True),
    Column("item", Json, nullable=True),  # a for_each part's item
    # remote tries: "" while the message waits in the broker, then the worker that runs it
    Column("worker", String(255), nullable=True),
    # a remote try's outcome, as its worker reported it, until the runner applies it
    Column("reported", NullableJson, nullable=True),
    Index(
        "ix_run_tasks_reported",
        "run_id",
        postgresql_where=text("reported IS NOT NULL"),
        sqlite_where=text("reported IS NOT NULL"),
    ),
)

# What handlers logged while a run or a task's try ran (``execution/capture.py``). ``id`` is
# the order and the API's cursor; ``seq`` numbers a try's records (0: the line saying what was
# cut from its middle). ``attempt``: NULL for the run's current attempt, N once retried.
run_logs = Table(
    "run_logs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("task", String(1024), nullable=False),  # "" for a plain run
    Column("part", Integer, nullable=False),  # -1: the whole task (or a plain run)
    Column("try_number", Integer, nullable=False),
    Column("attempt", Integer, nullable=True),
    Column("seq", Integer, nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    Column("level", Integer, nullable=False),
    Column("logger", String(255), nullable=False),
    Column("message", Text, nullable=False),
    Index("ix_run_logs_try", "run_id", "task", "part", "try_number", "id"),
)

# A job's labels, one row each: ``GET /jobs?label=`` and ``GET /runs?label=`` find by them.
job_labels = Table(
    "job_labels",
    metadata,
    Column("job_id", String(255), primary_key=True),
    Column("label", String(64), primary_key=True),
    Index("ix_job_labels_label", "label", "job_id"),
)

# Every change to a job or to the service state, written in the transaction of the change.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("user", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("job_id", String(255), nullable=True),  # NULL: the service's own state
    Column("reason", Text, nullable=True),
    Column("details", NullableJson, nullable=True),  # changed fields (old, new), run ids…
    Index("ix_audit_log_job", "job_id", "id"),
    Index("ix_audit_log_user", "user", "id"),
)

flow_outbox = Table(
    "flow_outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("job_id", String(255), nullable=False),
    Column("run_id", String(32), nullable=True),  # with arg_index: the flow's idempotency key
    Column("arg_index", Integer, nullable=True),
    Column("flow_name", String(255), nullable=False),
    Column("arguments", Json, nullable=False),
    Column("task_names", Json, nullable=True),
    Column("run_subsequent", Boolean, nullable=False, default=False),
    Column("follow_subflows", Boolean, nullable=False, default=False),
    Column("status", String(16), nullable=False),  # pending|delivered|sent|failed
    Column("error", Text, nullable=True),  # why the dispatcher refused it
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    UniqueConstraint("run_id", "arg_index", name="uq_flow_outbox_key"),
    Index("ix_flow_outbox_status", "status", "id"),
    Index("ix_flow_outbox_job", "job_id", "id"),
)

# Alerts about runs (and slots that never ran), an outbox of their own: inserted with what
# raised them, sent by the leader's ``execution/alerting.py``, retried until ``give_up_at``.
alerts = Table(
    "alerts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),  # one alert per run, event, target
    Column("delivery", String(32), nullable=False),  # X-F8A-Jobs-Delivery, the same on retries
    Column("job_id", String(255), nullable=False),
    Column("run_id", String(32), nullable=True),  # NULL: a slot that never became a run
    Column("slot", UTCDateTime, nullable=True),  # a late alert's slot
    Column("event", String(16), nullable=False),  # core/alerts.py EVENTS
    Column("target", Json, nullable=False),
    Column("target_key", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # pending|sent|failed
    Column("tries", Integer, nullable=False),
    Column("next_try_at", UTCDateTime, nullable=False),
    Column("give_up_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("error", Text, nullable=True),  # the last delivery's failure
    Column("report", NullableJson, nullable=True),  # made at the first try, sent on each
    Index("ix_alerts_due", "status", "next_try_at"),
    Index("ix_alerts_run", "run_id"),
    Index("ix_alerts_repeat", "job_id", "event", "target_key", "created_at"),
)

service_state = Table(
    "service_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

leadership = Table(
    "leadership",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("epoch", Integer, nullable=False),  # bumped by each new leader: fences the old one
    Column("holder", String(128), nullable=True),
    Column("since", UTCDateTime, nullable=True),
)
