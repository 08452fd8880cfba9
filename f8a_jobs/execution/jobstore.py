"""APScheduler 3 reads jobs from our JSON rows through this job store.

Jobs are never pickled: each row becomes an APScheduler ``Job`` that only carries the schedule
(our executor queues runs; it never calls the job's function). APScheduler updates one job at a
time; this store hands those updates to the pass's ``FireBatch``, written in one transaction
with the pass's due runs (``get_next_run_time`` ends every pass), guarded by each row's
``revision`` so that an edit made through the API meanwhile is never overwritten.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, JobLookupError
from sqlalchemy import Engine, func, select

from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.schedules import build_trigger
from f8a_jobs.execution.firing import FireBatch
from f8a_jobs.storage.tables import jobs

RETRY_SECONDS = 1.0
#: What the store reads of a job (handler, kwargs, policy: a due run may start at once;
#: labels and priority: its runs copy them).
COLUMNS = (
    jobs.c.job_id,
    jobs.c.handler,
    jobs.c.kwargs,
    jobs.c.policy,
    jobs.c.schedule,
    jobs.c.misfire_grace_time,
    jobs.c.next_run_time,
    jobs.c.revision,
    jobs.c.labels,
    jobs.c.priority,
)
log = logging.getLogger(__name__)


def never_called() -> None:
    """The ``func`` of our APScheduler jobs: runs are queued as rows, not called."""
    raise RuntimeError("f8a-jobs runs are executed from job_runs rows, not by APScheduler")


JOB_TEMPLATE: tuple[tuple[str, Any], ...] = (
    ("func_ref", f"{__name__}:never_called"),
    ("func", never_called),
    ("executor", "default"),
    ("args", ()),
    ("kwargs", {}),
    ("coalesce", False),  # our executor must see every missed run time, to record it
    ("max_instances", 1),
)


class JobRowStore(BaseJobStore):
    def __init__(self, engine: Engine, batch: FireBatch, due_batch: int = 5000) -> None:
        super().__init__()
        self.engine = engine
        self.batch = batch
        self.due_batch = due_batch
        self._revisions: dict[str, int] = {}
        self._closing = False
        # When the scheduler wakes next, as the last pass ended (None: a pass is under way,
        # or none is planned): a job changed to run later needs no pass before then.
        self.planned: datetime | None = None

    def close(self) -> None:
        """Hand out no more due jobs: APScheduler makes one last pass after its executors
        stop, and would advance the next run time of jobs it can no longer run."""
        self._closing = True

    def job_from_row(self, row: Any) -> Job:
        """The APScheduler ``Job`` of a row: the attributes ``Job.__setstate__`` sets, set
        directly (it would resolve the function by its import path for every job)."""
        job = Job.__new__(Job)
        for name, value in JOB_TEMPLATE:
            setattr(job, name, value)
        job.id = job.name = row.job_id
        job.trigger = build_trigger(row.schedule)
        job.misfire_grace_time = row.misfire_grace_time
        job.next_run_time = row.next_run_time
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        self._revisions[row.job_id] = row.revision
        self.batch.read(row)
        return job

    def lookup_job(self, job_id: str) -> Job | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(*COLUMNS).where(jobs.c.job_id == job_id)).first()
        return self.job_from_row(row) if row else None

    def get_due_jobs(self, now: datetime) -> list[Job]:
        self.planned = None  # a pass begins
        self.flush()
        if self._closing:
            return []
        query = (
            select(*COLUMNS)
            .where(jobs.c.next_run_time <= now)
            .order_by(jobs.c.next_run_time)
            .limit(self.due_batch)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        self._revisions.clear()  # the last pass's are written: keep only this pass's
        return [self.job_from_row(row) for row in rows]

    def get_next_run_time(self) -> datetime | None:
        """Ends every scheduling pass; must not raise, or APScheduler's loop thread dies."""
        try:
            self.flush()
            with self.engine.connect() as connection:
                upcoming = connection.execute(select(func.min(jobs.c.next_run_time))).scalar()
        except Exception:
            log.exception("job store unavailable; retrying in %s s", RETRY_SECONDS)
            upcoming = utcnow() + timedelta(seconds=RETRY_SECONDS)
        self.planned = upcoming
        return upcoming

    def get_all_jobs(self) -> list[Job]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(*COLUMNS).where(jobs.c.next_run_time.is_not(None))
            ).all()
        return [self.job_from_row(row) for row in rows]

    def add_job(self, job: Job) -> None:
        raise NotImplementedError("jobs are created with services.jobs.create_job, as rows")

    def update_job(self, job: Job) -> None:
        self.batch.advance(job.id, self._revisions[job.id], job.next_run_time)

    def remove_job(self, job_id: str) -> None:
        """APScheduler removes a job that will not fire again; we keep it as history."""
        if job_id not in self._revisions:
            raise JobLookupError(job_id)
        self.batch.advance(job_id, self._revisions[job_id], None)

    def remove_all_jobs(self) -> None:
        raise NotImplementedError("jobs are deleted with services.jobs.delete_job")

    def shutdown(self) -> None:
        self.flush()

    def flush(self) -> None:
        """Write the pass's fires and next run times; kept for the next try if it fails."""
        self.batch.flush()
