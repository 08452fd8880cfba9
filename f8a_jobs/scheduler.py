"""The firing scheduler: APScheduler 3 with our job store, our executor and run recording.

Only the leader process (see ``leader.py``) runs one. Every due run ends in ``job_runs``: it
runs (``succeeded``/``failed``), or it is recorded ``missed`` with the reason — coalesced into a
later run, beyond its misfire grace time, or skipped because the previous run still runs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_PAUSED
from sqlalchemy import Engine, select, update

from f8a_jobs.flows.dispatchers import make_dispatcher
from f8a_jobs.flows.relay import Relay
from f8a_jobs.handlers.registry import get_handler
from f8a_jobs.recorder import RunRecorder
from f8a_jobs.runs import FAILED, QUEUED, RUNNING
from f8a_jobs.schedules import utcnow
from f8a_jobs.settings import Settings
from f8a_jobs.storage.jobstore import JobRowStore
from f8a_jobs.storage.tables import job_runs, jobs

log = logging.getLogger(__name__)
ORPHANED = "the process running it stopped before the run ended (it may have run partly)"


def execute_handler(handler: str, job_id: str, engine: Engine, **kwargs: Any) -> Any:
    """What every job's APScheduler ``func`` is: run the named handler."""
    return get_handler(handler)(job_id, engine=engine).execute(**kwargs)


class RecordingExecutor(BaseExecutor):
    """Runs jobs on a thread pool and accounts for every run time APScheduler hands it."""

    def __init__(self, recorder: RunRecorder, threads: int) -> None:
        super().__init__()
        self.recorder = recorder
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="f8a-jobs-run")

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait)

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        *earlier, latest = run_times
        if earlier:
            self._record_skipped(job, earlier, latest)
        with self._lock:
            if self._instances[job.id] >= job.max_instances:
                self.recorder.missed(job.id, [latest], "the previous run was still running")
                return
            self._instances[job.id] += 1
        self._pool.submit(self._run, job, latest)

    def submit_queued(self, job: Job, run_id: str, requested_at: datetime) -> None:
        """A run asked for through the API: it runs even if another run is in progress."""
        with self._lock:
            self._instances[job.id] += 1
        self._pool.submit(self._run, job, requested_at, run_id)

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        raise NotImplementedError("submit_job does the work")

    def _record_skipped(self, job: Job, earlier: Sequence[datetime], latest: datetime) -> None:
        now = utcnow()
        grace = timedelta(seconds=job.misfire_grace_time)
        too_late = [moment for moment in earlier if now - moment > grace]
        coalesced = [moment for moment in earlier if now - moment <= grace]
        if too_late:
            self.recorder.missed(
                job.id, too_late, f"missed by more than the misfire grace time of {grace}"
            )
        if coalesced:
            self.recorder.missed(
                job.id, coalesced, f"coalesced into the run scheduled for {latest.isoformat()}"
            )

    def _run(self, job: Job, scheduled_for: datetime, run_id: str | None = None) -> None:
        try:
            late = utcnow() - scheduled_for
            if run_id is None and late > timedelta(seconds=job.misfire_grace_time):
                reason = (
                    f"late by {late}, beyond the misfire grace time of {job.misfire_grace_time} s"
                )
                self.recorder.missed(job.id, [scheduled_for], reason)
                return
            run_id = self.recorder.started(job.id, scheduled_for, run_id)
            try:
                job.func(*job.args, **job.kwargs)
            except Exception as error:
                log.exception("job %s failed", job.id)
                self.recorder.failed(run_id, error, job.args[0], job.kwargs)
            else:
                self.recorder.succeeded(run_id)
        except Exception:
            log.exception("recording a run of job %s failed", job.id)
        finally:
            with self._lock:
                self._instances[job.id] -= 1
                if not self._instances[job.id]:
                    del self._instances[job.id]


class FiringScheduler:
    """Everything the leader runs: APScheduler, the run recorder and the flow relay."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.recorder = RunRecorder(engine)
        self.store = JobRowStore(engine)
        self.executor = RecordingExecutor(self.recorder, settings.executor_threads)
        self.apscheduler = BackgroundScheduler(
            timezone=UTC,
            jobstores={"default": self.store},
            executors={"default": self.executor},
            jobstore_retry_interval=1,
        )
        self.relay = Relay(engine, make_dispatcher(settings))

    def start(self, paused: bool) -> None:
        self.fail_orphaned_runs()
        self.recorder.start()
        self.apscheduler.start(paused=paused)
        self.relay.start()

    def stop(self) -> None:
        """Finish the runs in progress; what is due but not started stays due in the database."""
        self.store.close()
        self.apscheduler.shutdown(wait=True)
        self.recorder.stop()
        self.relay.stop()

    def wakeup(self) -> None:
        self.apscheduler.wakeup()

    def set_paused(self, paused: bool) -> None:
        if paused and self.apscheduler.state != STATE_PAUSED:
            self.apscheduler.pause()
            log.info("firing paused")
        elif not paused and self.apscheduler.state == STATE_PAUSED:
            self.apscheduler.resume()
            log.info("firing resumed")

    def fail_orphaned_runs(self) -> int:
        """Runs still ``running`` when a process becomes leader belonged to one that died."""
        with self.engine.begin() as connection:
            return connection.execute(
                update(job_runs)
                .where(job_runs.c.status == RUNNING)
                .values(status=FAILED, finished_at=utcnow(), error=ORPHANED)
            ).rowcount

    def run_queued(self) -> int:
        """Start the runs asked for with ``POST /jobs/{id}/run``."""
        query = (
            select(job_runs.c.run_id, job_runs.c.scheduled_for, jobs)
            .join(jobs, jobs.c.job_id == job_runs.c.job_id)
            .where(job_runs.c.status == QUEUED)
            .order_by(job_runs.c.scheduled_for)
            .limit(100)
        )
        with self.engine.begin() as connection:
            rows = connection.execute(query).all()
            if not rows:
                return 0
            connection.execute(
                update(job_runs)
                .where(job_runs.c.run_id.in_([row.run_id for row in rows]))
                .values(status=RUNNING, started_at=utcnow())
            )
        for row in rows:
            self.executor.submit_queued(self.store.job_from_row(row), row.run_id, row.scheduled_for)
        return len(rows)
