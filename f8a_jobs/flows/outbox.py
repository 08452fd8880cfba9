"""The flow outbox: runs write flows here; a relay hands them to a dispatcher.

Writing flows and delivering them are apart on purpose: a broker outage delays flows, it never
loses them, and every flow a job dispatched stays listed under ``GET /flows``. A flow's key is
(run, argument index): a run that is run again cannot add a second copy, and the Celery task
id derives from the key, so workers can drop a message they have seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update

from f8a_jobs.json_values import holds_nul
from f8a_jobs.schedules import utcnow
from f8a_jobs.storage.bulk import among
from f8a_jobs.storage.tables import flow_outbox

PENDING = "pending"
FAILED = "failed"  # the dispatcher refused it for good; ``error`` says why
FLOW_NAME_LIMIT = 255  # flow_outbox.flow_name


@dataclass(slots=True)  # not frozen: a frozen init costs a call per field, per flow
class Flow:
    flow_name: str
    arguments: dict[str, Any]
    task_names: list[str] | None = None
    run_subsequent: bool = False
    follow_subflows: bool = False


def check_storable(flow: Flow) -> None:
    """Raise ``ValueError`` for a flow the database would refuse to store."""
    if len(flow.flow_name) > FLOW_NAME_LIMIT:
        raise ValueError(f"flow name longer than {FLOW_NAME_LIMIT} characters: {flow.flow_name!r}")
    if holds_nul([flow.flow_name, flow.arguments, flow.task_names]):
        raise ValueError(f"flow {flow.flow_name!r} holds a NUL character, which cannot be stored")


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
        "status": PENDING,
        "created_at": created_at or utcnow(),
    }


def claim_pending(connection: Connection, limit: int) -> list[dict[str, Any]]:
    """The oldest pending flows, locked against other relays where the database can."""
    query = (
        select(flow_outbox)
        .where(flow_outbox.c.status == PENDING)
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


def flow_key(flow: dict[str, Any]) -> str:
    """The idempotency key workers see (in the task id and a header)."""
    if flow["run_id"] is None:  # written before flows were keyed by run
        return f"outbox-{flow['id']}"
    return f"{flow['run_id']}-{flow['arg_index']}"


def list_flows(
    engine: Engine, job_id: str | None, flow_name: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    conditions = []
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
        "flow_name": row["flow_name"],
        "arguments": row["arguments"],
        "task_names": row["task_names"],
        "run_subsequent": row["run_subsequent"],
        "follow_subflows": row["follow_subflows"],
        "status": row["status"],
        "error": row["error"],
        "created_at": row["created_at"].isoformat(),
        "sent_at": row["sent_at"].isoformat() if row["sent_at"] else None,
    }
