"""Finding jobs and runs by label: ``job_labels`` holds one row per job and label, indexed by
label, so a filter on labels reads the index, not every job's JSON."""

from __future__ import annotations

from sqlalchemy import ColumnElement, select

from f8a_jobs.storage.tables import job_labels


def labelled(job_id: ColumnElement[str], label: str) -> ColumnElement[bool]:
    """``job_id`` (a column) is the id of a job with ``label``."""
    return job_id.in_(select(job_labels.c.job_id).where(job_labels.c.label == label))
