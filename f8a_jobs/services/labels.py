"""Finding jobs and runs by label: ``job_labels`` holds one row per job and label, indexed by
label, so a filter on labels reads the index, not every job's JSON."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, func, select

from f8a_jobs.storage.tables import job_labels


def labelled(job_id: ColumnElement[str], label: str) -> ColumnElement[bool]:
    """``job_id`` (a column) is the id of a job with ``label``."""
    return job_id.in_(select(job_labels.c.job_id).where(job_labels.c.label == label))


def count_labelled(labels: tuple[str, ...]) -> Select[tuple[int]]:
    """How many jobs have all of ``labels``, from the index alone (a row of ``job_labels``
    exists only with its job): no join with ``jobs``, which would read every labelled job."""
    first, *others = labels
    query = select(func.count()).where(job_labels.c.label == first)
    return query.where(*(labelled(job_labels.c.job_id, label) for label in others))
