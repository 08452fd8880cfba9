"""The firing scheduler: what the leader runs during one leadership term.

APScheduler 3 reads jobs through our job store and hands due run times to ``FireForwarder``;
each pass ends in one transaction that queues the due runs (``firing``). The executor
claims queued runs and runs their handlers, the writer records how they ended, and the relay
delivers their flows. Every part is fenced by the term's epoch. A recorded end that a queued
run waits for (``wakeups.ENDED``: a backfill's next slot, a buffered run) wakes the claimer at
once: the next slot starts when the previous one ends, not at the next poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_PAUSED
from sqlalchemy import Engine

from f8a_jobs.core.settings import Settings
from f8a_jobs.execution.alerting import Alerter
from f8a_jobs.execution.executors.celery import CeleryExecutor
from f8a_jobs.execution.executors.threads import ThreadExecutor
from f8a_jobs.execution.firing import FireBatch
from f8a_jobs.execution.jobstore import JobRowStore
from f8a_jobs.execution.recording import RunWriter
from f8a_jobs.execution.relay import Relay
from f8a_jobs.execution.runner.runner import WorkflowRunner
from f8a_jobs.handlers.registry import handlers
from f8a_jobs.services.flows.dispatchers import make_dispatcher
from f8a_jobs.storage import wakeups

log = logging.getLogger(__name__)


class FireForwarder(BaseExecutor):
    """APScheduler's executor: due run times become fires, queued as runs at the pass's end."""

    def __init__(self, batch: FireBatch) -> None:
        super().__init__()
        self.batch = batch

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        self.batch.fire(job.id, run_times, job.misfire_grace_time)

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        raise NotImplementedError("submit_job does the work")


class FiringScheduler:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        epoch: int,
        owner: str,
        on_lost: Callable[[], None],
        writer: RunWriter | None = None,
    ) -> None:
        """``writer``: the process's run writer, which outlives terms (finishing is not
        fenced); without one, the term has its own."""
        self.engine = engine
        self.epoch = epoch
        self.lost = threading.Event()

        def lost() -> None:
            self.lost.set()
            on_lost()

        self._owns_writer = writer is None
        self.writer = writer or RunWriter(engine)
        executor_class = CeleryExecutor if settings.executor == "celery" else ThreadExecutor
        self.executor: ThreadExecutor | CeleryExecutor = executor_class(
            engine, settings, self.writer, owner, epoch, lost
        )
        self.workflows = WorkflowRunner(engine, settings, epoch, owner, self.executor, lost)
        self.executor.workflows = self.workflows
        self.batch = FireBatch(engine, epoch, self.executor, lost)
        self.store = JobRowStore(engine, self.batch)
        self.apscheduler = BackgroundScheduler(
            timezone=UTC,
            jobstores={"default": self.store},
            executors={"default": FireForwarder(self.batch)},
            jobstore_retry_interval=1,
        )
        self.relay = Relay(engine, make_dispatcher(settings), epoch, lost)
        self.alerter = Alerter(engine, settings, epoch, lost)

    def start(self, paused: bool) -> None:
        handlers()  # load the plugins now: a broken one shows at once, not in the first run
        if self._owns_writer:
            self.writer.start()
        self.executor.start()
        self.workflows.start()
        self.apscheduler.start(paused=paused)
        self.relay.start()
        self.alerter.start()
        wakeups.subscribe(self._on_local_wakeup)

    def threads(self) -> dict[str, threading.Thread | None]:
        threads = {
            "apscheduler": getattr(self.apscheduler, "_thread", None),
            "claimer": self.executor.thread,
            "workflows": self.workflows.thread,
            "relay": self.relay.thread,
            "alerts": self.alerter.thread,
        }
        return {**threads, "run-writer": self.writer.thread} if self._owns_writer else threads

    def dead_threads(self) -> list[str]:
        """The parts that should run but whose thread has died."""
        return [
            name
            for name, thread in self.threads().items()
            if thread is None or not thread.is_alive()
        ]

    def wakeup(self, topics: frozenset[str] = wakeups.ALL) -> None:
        """Wake the parts ``topics`` concern: jobs changed, runs queued, flows written. Jobs
        that run after the scheduling pass planned next need no pass now: that one reads
        them."""
        if wakeups.STATE in topics or wakeups.jobs_wake(topics, self.store.planned):
            self.apscheduler.wakeup()
        if wakeups.RUNS in topics or wakeups.TASKS in topics:
            self.executor.wakeup(topics)
        if wakeups.RUNS in topics:
            self.workflows.poke()
        if wakeups.FLOWS in topics:
            self.relay.wakeup()

    def _on_local_wakeup(self, topic: str) -> None:
        if topic == wakeups.ENDED:  # one event set on the writer's thread: no query
            self.executor.wakeup(frozenset({wakeups.RUNS}))

    def set_paused(self, paused: bool) -> None:
        if paused and self.apscheduler.state != STATE_PAUSED:
            self.apscheduler.pause()
            log.info("firing paused")
        elif not paused and self.apscheduler.state == STATE_PAUSED:
            self.apscheduler.resume()
            log.info("firing resumed")

    def stop_starting(self) -> None:
        """Fire, claim and deliver nothing more; runs in flight go on (see ``drain``).

        What is due but not fired stays due in the database. Every step runs even when an
        earlier one fails: a stop that stopped half would leave threads working for a term
        that has ended.
        """
        _each(
            ("wake-ups", lambda: wakeups.unsubscribe(self._on_local_wakeup)),
            ("job store", self.store.close),
            ("apscheduler", lambda: self.apscheduler.shutdown(wait=True)),
            ("claiming", self.executor.stop_claiming),
            ("workflows", self.workflows.stop_starting),
            ("relay", self.relay.stop),
            ("alerts", self.alerter.stop),
        )

    def drain(self, timeout: float) -> None:
        """Let the runs in flight end (up to ``timeout`` s), record them, stop the rest."""
        _each(
            ("runs in flight", lambda: self.executor.drain(timeout)),
            ("workflows", self.workflows.stop),
            ("executor", self.executor.stop),
            ("run writer", self.writer.stop if self._owns_writer else self.writer.flush),
        )

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_starting()
        self.drain(timeout)


def _each(*steps: tuple[str, Callable[[], object]]) -> None:
    for name, step in steps:
        try:
            step()
        except Exception:
            log.exception("stopping the %s failed; stopping the rest", name)
