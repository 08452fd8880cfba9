"""The flow outbox: the one writer of flow rows. Runs write flows here with their final state;
a relay hands them to a dispatcher.

Writing flows and delivering them are apart on purpose: a broker outage delays flows, it never
loses them, and every flow a job dispatched stays listed under ``GET /flows``. A flow's key is
(run, argument index): a run that is run again cannot add a second copy, and the Celery task
id derives from the key, so workers can drop a message they have seen. Delivered flows older
than ``F8A_JOBS_RUN_RETENTION`` days go, in small batches, during the leader's housekeeping.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, delete, func, select, update

from f8a_jobs.core.access import SERVICE, Caller
from f8a_jobs.core.clock import iso, utcnow
from f8a_jobs.core.flow import Flow
from f8a_jobs.core.states import FlowStatus
from f8a_jobs.services import access
from f8a_jobs.storage.bulk import among, insert_rows
from f8a_jobs.storage.tables import flow_outbox, jobs

DELIVERED = (FlowStatus.DELIVERED, FlowStatus.SENT)
RETENTION_BATCH = 500


def flow_row(
    job_id: str, run_id: str, arg_index: int, flow: Flow, created_at: datetime | None = None
) -> dict[str, Any]:
    """The outbox row of a run's ``arg_index``-th flow; (run_id, arg_index) is its key."""
    return {
        "job_id": job_id,
        "run_id": run_id,
        "arg_index": arg_index,
        "flow_name": flow.flow_name,
        "arguments": flow.arguments,
        "task_names": flow.task_names,
        "run_subsequent": flow.run_subsequent,
        "follow_subflows": flow.follow_subflows,
        "status": FlowStatus.PENDING,
        "created_at": created_at or utcnow(),
    }


def insert(connection: Connection, rows: list[dict[str, Any]], tolerant: bool = False) -> None:
    """Write flow rows (``flow_row``) in the caller's transaction; ``tolerant``: skip rows whose
    key exists already."""
    insert_rows(connection, flow_outbox, rows, skip_conflicts=tolerant)


def claim_pending(connection: Connection, limit: int) -> list[dict[str, Any]]:
    """The oldest pending flows, locked against other relays where the database can."""
    query = (
        select(flow_outbox)
        .where(flow_outbox.c.status == FlowStatus.PENDING)
        .order_by(flow_outbox.c.id)
        .limit(limit)
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    result = connection.execute(query)
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]


def mark(connection: Connection, ids: list[int], status: str, error: str | None = None) -> None:
    connection.execute(
        update(flow_outbox)
        .where(among(connection, flow_outbox.c.id, ids))
        .values(status=status, sent_at=utcnow(), error=error)
    )


def delete_old_flows(connection: Connection, days: float, now: datetime) -> int:
    """Delete up to one batch of flows delivered more than ``days`` ago; how many went."""
    oldest = (
        select(flow_outbox.c.id)
        .where(
            flow_outbox.c.status.in_(DELIVERED),
            flow_outbox.c.sent_at < now - timedelta(days=days),
        )
        .order_by(flow_outbox.c.id)
        .limit(RETENTION_BATCH)
    )
    ids = list(connection.execute(oldest).scalars())
    if ids:
        connection.execute(delete(flow_outbox).where(flow_outbox.c.id.in_(ids)))
    return len(ids)


def flow_key(flow: dict[str, Any]) -> str:
    """The idempotency key workers see (in the task id and a header)."""
    if flow["run_id"] is None:  # written before flows were keyed by run
        return f"outbox-{flow['id']}"
    return f"{flow['run_id']}-{flow['arg_index']}"


def task_id(key: str) -> str:
    """The id a broker dispatcher sends the flow under: the Celery task id, and with Selinon the
    flow's dispatcher id (``selinon.Dispatcher``'s task id)."""
    return f"f8a-jobs-flow-{key}"


def list_flows(
    engine: Engine,
    job_id: str | None,
    flow_name: str | None,
    limit: int,
    offset: int,
    caller: Caller = SERVICE.caller,
) -> tuple[list[dict[str, Any]], int]:
    """The flows of the jobs ``caller`` may read (an admin: also those of deleted jobs)."""
    conditions: list[ColumnElement[bool]] = []
    if not caller.admin:
        readable = select(jobs.c.job_id).where(access.allowed(caller))
        conditions.append(flow_outbox.c.job_id.in_(readable))
    if job_id:
        conditions.append(flow_outbox.c.job_id == job_id)
    if flow_name:
        conditions.append(flow_outbox.c.flow_name == flow_name)
    query = select(flow_outbox).where(*conditions).order_by(flow_outbox.c.id.desc())
    with engine.connect() as connection:
        rows = connection.execute(query.limit(limit).offset(offset)).all()
        total = connection.execute(
            select(func.count()).select_from(flow_outbox).where(*conditions)
        ).scalar_one()
    return [_as_json(row._mapping) for row in rows], total


def _as_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "job_id": row["job_id"],
        "run_id": row["run_id"],
        "key": flow_key(row),
        "task_id": task_id(flow_key(row)),
        "flow_name": row["flow_name"],
        "arguments": row["arguments"],
        "task_names": row["task_names"],
        "run_subsequent": row["run_subsequent"],
        "follow_subflows": row["follow_subflows"],
        "status": row["status"],
        "error": row["error"],
        "created_at": row["created_at"].isoformat(),
        "sent_at": iso(row["sent_at"]),
    }
