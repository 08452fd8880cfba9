"""The one writer of the ``alerts`` table: alerts inserted once each (a key per run, event and
target), claimed when due, then sent, retried later, or failed for good."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select, update

from f8a_jobs.core.alerts import shown_target, target_key
from f8a_jobs.core.clock import iso
from f8a_jobs.core.json_values import storable_text
from f8a_jobs.storage.bulk import among, insert_rows
from f8a_jobs.storage.tables import alerts

PENDING, SENT, FAILED = "pending", "sent", "failed"
ERROR_LIMIT = 2000
RETENTION_BATCH = 1000


def alert_row(
    job_id: str,
    run_id: str | None,
    event: str,
    target: Mapping[str, Any],
    now: datetime,
    retry_for: float,
    slot: datetime | None = None,
    attempt: int = 0,
) -> dict[str, Any]:
    """A pending alert; its key makes raising it again (by another path, or after a crash)
    a no-op. A late alert is about its slot (the leader's check and the run's end may both
    find it late)."""
    where = target_key(target)
    about = f"slot {iso(slot)}" if slot else f"{run_id} attempt {attempt}"
    key = hashlib.sha256(f"{job_id}\n{about}\n{event}\n{where}".encode()).hexdigest()
    return {
        "key": key,
        "delivery": os.urandom(16).hex(),
        "job_id": job_id,
        "run_id": run_id,
        "slot": slot,
        "event": event,
        "target": dict(target),
        "target_key": where,
        "status": PENDING,
        "tries": 0,
        "next_try_at": now,
        "give_up_at": now + timedelta(seconds=retry_for),
        "created_at": now,
        "sent_at": None,
        "error": None,
        "report": None,
    }


def add(connection: Connection, rows: list[dict[str, Any]], now: datetime) -> int:
    """Insert the alerts not raised already that ``repeat_every`` lets through (none of their
    job, event and target within the period, in the table or earlier in ``rows``); how many.
    In key order: two transactions raising the same alerts lock them in one order."""
    raised = _raised(connection, [row["key"] for row in rows])
    kept, seen = [], set()
    for row in sorted(rows, key=lambda row: row["key"]):
        if row["key"] in raised:
            continue
        every = row["target"].get("repeat_every")
        if every:
            kind = (row["job_id"], row["event"], row["target_key"])
            if kind in seen or _recent(connection, kind, now - timedelta(seconds=every)):
                continue
            seen.add(kind)
        kept.append(row)
    insert_rows(connection, alerts, kept, skip_conflicts=True)
    return len(kept)


def _raised(connection: Connection, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    query = select(alerts.c.key).where(among(connection, alerts.c.key, keys))
    return set(connection.execute(query).scalars())


def _recent(connection: Connection, kind: tuple[str, str, str], since: datetime) -> bool:
    job_id, event, where = kind
    query = select(alerts.c.id).where(
        alerts.c.job_id == job_id,
        alerts.c.event == event,
        alerts.c.target_key == where,
        alerts.c.created_at > since,
    )
    return connection.execute(query.limit(1)).first() is not None


def claim_due(connection: Connection, now: datetime, limit: int) -> list[dict[str, Any]]:
    """Pending alerts whose time has come, oldest first, locked against another sender."""
    query = (
        select(alerts)
        .where(alerts.c.status == PENDING, alerts.c.next_try_at <= now)
        .order_by(alerts.c.next_try_at, alerts.c.id)
        .limit(limit)
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [dict(row._mapping) for row in connection.execute(query)]


def lease(connection: Connection, alert_id: int, report: Any, until: datetime) -> None:
    """The sender takes an alert until ``until`` (then it is due again: the sender died), with
    the report every try of it sends."""
    statement = update(alerts).where(alerts.c.id == alert_id, alerts.c.status == PENDING)
    connection.execute(statement.values(next_try_at=until, report=report))


def sent(connection: Connection, alert_id: int, now: datetime) -> None:
    _change(connection, alert_id, status=SENT, sent_at=now, error=None)


def retry_later(connection: Connection, alert: Mapping[str, Any], error: str, at: datetime) -> None:
    """A delivery failed: try again at ``at``, or fail for good past the alert's give-up time."""
    values: dict[str, Any] = {"error": storable_text(error, ERROR_LIMIT)}
    if at > alert["give_up_at"]:
        values["status"] = FAILED
    _change(connection, alert["id"], next_try_at=at, **values)


def failed(connection: Connection, alert_id: int, error: str) -> None:
    """Refused for good (no SMTP server configured, say): never retried."""
    _change(connection, alert_id, status=FAILED, error=storable_text(error, ERROR_LIMIT))


def _change(connection: Connection, alert_id: int, **values: Any) -> None:
    statement = update(alerts).where(alerts.c.id == alert_id, alerts.c.status == PENDING)
    connection.execute(statement.values(tries=alerts.c.tries + 1, **values))


def delete_for(connection: Connection, run_ids: Any) -> None:
    """The alerts of runs that go (a list, or a select of run ids), but those still to be
    sent: a failed run cleaned away at once is still reported."""
    statement = delete(alerts).where(alerts.c.run_id.in_(run_ids), alerts.c.status != PENDING)
    connection.execute(statement)


def delete_of_job(connection: Connection, job_id: str) -> None:
    """A deleted job's alerts go with it, pending ones too (nothing is left to report)."""
    connection.execute(delete(alerts).where(alerts.c.job_id == job_id))


def delete_old(connection: Connection, days: float, now: datetime) -> int:
    """Retention: up to one batch of alerts sent or failed more than ``days`` ago (those of a
    slot that never ran, or whose run was cleaned away while they were pending)."""
    oldest = (
        select(alerts.c.id)
        .where(alerts.c.status != PENDING, alerts.c.created_at < now - timedelta(days=days))
        .order_by(alerts.c.id)
        .limit(RETENTION_BATCH)
    )
    ids = list(connection.execute(oldest).scalars())
    if ids:
        connection.execute(delete(alerts).where(alerts.c.id.in_(ids)))
    return len(ids)


def of_run(connection: Connection, run_id: str) -> list[dict[str, Any]]:
    """A run's alerts and their delivery, as the API shows them."""
    query = select(alerts).where(alerts.c.run_id == run_id).order_by(alerts.c.id)
    return [
        {
            "event": row.event,
            "target": shown_target(row.target),
            "status": row.status,
            "delivery": row.delivery,
            "tries": row.tries,
            "created_at": iso(row.created_at),
            "sent_at": iso(row.sent_at),
            "next_try_at": iso(row.next_try_at) if row.status == PENDING else None,
            "error": row.error,
        }
        for row in connection.execute(query)
    ]
