"""The one writer of job rows: definitions from the API and default job files, and the
scheduler's progress (next run times, a pause after a failed run) in the transactions that
fire or record runs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, delete, insert, literal, select, update

from f8a_jobs.core.access import SERVICE, Actor
from f8a_jobs.core.errors import JobNotFound
from f8a_jobs.core.schedules import first_run_time
from f8a_jobs.core.states import JobState
from f8a_jobs.services import audit
from f8a_jobs.services.jobs.spec import JobSpec
from f8a_jobs.storage.bulk import among, chunked, insert_rows, update_rows
from f8a_jobs.storage.tables import job_labels, jobs

PAUSED_ON_FAILURE = Actor(SERVICE.caller, "a run failed its last try (pause_on_failure)")
INSERT, INSERT_LABEL = insert(jobs), insert(job_labels)  # built once: compiled once


def add(connection: Connection, job: JobSpec, now: datetime) -> dict[str, Any]:
    """A new job's row (an ``IntegrityError`` when its id is taken); the row. Its labels are
    inserted, none deleted: a label row exists only with its job."""
    row = {**job.row(now), "revision": 1, "created_at": now}
    connection.execute(INSERT, row)
    if job.labels:
        connection.execute(
            INSERT_LABEL, [{"job_id": job.job_id, "label": name} for name in job.labels]
        )
    return row


def replace(connection: Connection, job: JobSpec, now: datetime) -> None:
    """Overwrite a job's definition (a changed default job file) but its state: a pause made
    through the API stays. Its history stays too."""
    row = job.row(now)
    del row["state"]
    upcoming = first_run_time(job.schedule)
    row["next_run_time"] = case(
        (jobs.c.state == JobState.PAUSED, None),
        else_=literal(upcoming, jobs.c.next_run_time.type),
    )
    connection.execute(
        update(jobs).where(jobs.c.job_id == job.job_id).values(**row, revision=jobs.c.revision + 1)
    )
    label(connection, job.job_id, job.labels)


def add_many(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """New jobs' rows (``add``'s, each with its ``revision`` and ``created_at``) and their
    labels, in a round trip each (COPY on PostgreSQL); an ``IntegrityError`` when an id is
    taken."""
    insert_rows(connection, jobs, rows)
    insert_rows(connection, job_labels, _label_rows(rows))


def replace_many(
    connection: Connection, rows: list[dict[str, Any]], labels: dict[str, list[str]]
) -> None:
    """Set the columns of ``rows`` (the same in each, ``job_id`` among them) on the jobs the
    caller has locked (``locked_many``): one ``UPDATE … FROM unnest`` on PostgreSQL. The
    jobs of ``labels`` get those labels."""
    update_rows(connection, jobs, ("job_id",), rows)
    for ids in chunked(list(labels)):
        connection.execute(delete(job_labels).where(among(connection, job_labels.c.job_id, ids)))
    rows = [{"job_id": job_id, "labels": names} for job_id, names in labels.items()]
    insert_rows(connection, job_labels, _label_rows(rows))


def locked_many(connection: Connection, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The rows of those of ``job_ids`` that exist, by id, locked until the transaction
    ends."""
    found = {}
    for ids in chunked(job_ids):
        query = select(jobs).where(among(connection, jobs.c.job_id, ids)).with_for_update()
        result = connection.execute(query)
        names = list(result.keys())  # once, not a row's mapping each: ten thousand rows
        found.update({row.job_id: dict(zip(names, row, strict=True)) for row in result.all()})
    return found


def remove_many(connection: Connection, job_ids: list[str]) -> None:
    """Delete jobs' rows and their labels."""
    for ids in chunked(job_ids):
        connection.execute(delete(job_labels).where(among(connection, job_labels.c.job_id, ids)))
        connection.execute(delete(jobs).where(among(connection, jobs.c.job_id, ids)))


def _label_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"job_id": row["job_id"], "label": name} for row in rows for name in row["labels"]]


def locked(connection: Connection, job_id: str) -> dict[str, Any]:
    """A job's row, locked until the transaction ends (a 404 if there is none)."""
    row = connection.execute(select(jobs).where(jobs.c.job_id == job_id).with_for_update()).first()
    if row is None:
        raise JobNotFound(job_id)
    return dict(row._mapping)


def change(connection: Connection, job_id: str, values: dict[str, Any]) -> None:
    """Change a job the caller has locked (``locked``)."""
    connection.execute(update(jobs).where(jobs.c.job_id == job_id).values(**values))
    if "labels" in values:
        label(connection, job_id, values["labels"] or ())


def remove(connection: Connection, job_id: str) -> bool:
    """Delete a job's row (and its labels); whether there was one."""
    connection.execute(delete(job_labels).where(job_labels.c.job_id == job_id))
    return bool(connection.execute(delete(jobs).where(jobs.c.job_id == job_id)).rowcount)


def label(connection: Connection, job_id: str, labels: Iterable[str]) -> None:
    """A job's labels, one row each, as ``labels`` says (the others go)."""
    connection.execute(delete(job_labels).where(job_labels.c.job_id == job_id))
    rows = [{"job_id": job_id, "label": name} for name in labels]
    if rows:
        connection.execute(insert(job_labels), rows)


def advance(connection: Connection, advances: list[dict[str, Any]]) -> set[str]:
    """A firing pass moves jobs' ``next_run_time`` and ``last_run`` on (``advances`` hold
    ``job_id``, ``revision``, ``next_run_time`` and ``last_run``); a job whose revision changed
    since the scheduler read it (paused, edited, deleted) is left alone. Returns the jobs
    advanced."""
    return set(update_rows(connection, jobs, ("job_id", "revision"), advances, returning="job_id"))


def pause(connection: Connection, job_ids: list[str]) -> None:
    """Pause jobs whose run failed after its last try (``pause_on_failure``), audited as the
    service's own change."""
    if job_ids:
        for job_id in job_ids:
            audit.record(
                connection, PAUSED_ON_FAILURE, "pause", job_id, {"cause": "pause_on_failure"}
            )
        connection.execute(
            update(jobs)
            .where(among(connection, jobs.c.job_id, job_ids))
            .values(state=JobState.PAUSED, next_run_time=None, revision=jobs.c.revision + 1)
        )
