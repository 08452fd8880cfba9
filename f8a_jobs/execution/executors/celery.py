"""The Celery executor (``F8A_JOBS_EXECUTOR=celery``): the leader claims runs as the thread
executor does, but sends each one, and each workflow try its runner starts, to ``f8a-jobs
worker`` processes through the broker: one message a try.

The database stays the truth. A claimed run or started try shows ``worker = ""`` while its
message waits in the broker, and this executor heartbeats it; a worker that takes it writes its
name there and heartbeats it from then on. Workers record plain runs themselves and report a
try's outcome on its row; the leader hears of both by NOTIFY (or its poll) and reacts: the
runner applies reports and starts dependents; ended runs free their slots. Nothing waits on a
result backend.

Failure paths: a message the broker refuses or loses is sent again (``sending``), and a worker
drops a message whose try is no longer waiting, so a duplicate never runs. A worker that dies
stops heartbeating: the runner (tries) or the housekeeping (runs) runs it again as a new try. A
cancelled run or try that no worker took is revoked.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.policy import RunPolicy
from f8a_jobs.core.settings import Settings
from f8a_jobs.core.states import RunStatus, TaskState, Trigger
from f8a_jobs.execution import metrics
from f8a_jobs.execution.executors.base import Workflows, hand_over_workflows, logged
from f8a_jobs.execution.executors.messages import (
    RUN_TASK,
    TRY_TASK,
    celery_app,
    run_message,
    run_task_id,
    try_message,
    try_task_id,
)
from f8a_jobs.execution.executors.reports import outcome_of
from f8a_jobs.execution.executors.sending import Sender, Sent
from f8a_jobs.execution.loop import Every, Loop
from f8a_jobs.execution.recording import RunWriter
from f8a_jobs.services import runs
from f8a_jobs.services.runs import IN_BROKER, ClaimedRun, tasks
from f8a_jobs.services.workflows.tries import Start, TryOutcome
from f8a_jobs.storage import wakeups
from f8a_jobs.storage.bulk import among
from f8a_jobs.storage.fencing import LostLeadership
from f8a_jobs.storage.tables import job_runs

log = logging.getLogger(__name__)
TryMark = tuple[str, str, int, int]  # run, task, part, try
# Reports arrive one by one, each with its NOTIFY: applying them at most this often lets one
# runner step (one write) take several, for little latency (the tries run on other machines).
REPORT_EVERY = 0.01


class CeleryExecutor(Loop):
    remote: bool = True
    claim_worker: str | None = IN_BROKER
    what = "remote execution step"

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        writer: RunWriter,
        owner: str,
        epoch: int,
        on_lost: Callable[[], None],
    ) -> None:
        super().__init__("f8a-jobs-remote", on_lost)
        self.engine = engine
        self.owner = owner
        self.epoch = epoch
        self.capacity = settings.remote_in_flight
        self.queue = settings.task_queue
        self.resend_after = settings.remote_resend_after
        self.app = celery_app(settings)
        self.app.conf.update(  # the leader never blocks on the broker: it retries itself
            broker_connection_retry=False,
            broker_transport_options={
                **self.app.conf.broker_transport_options,
                "confirm_publish": True,
                "max_retries": 0,
            },
        )
        self.sender = Sender(self.app)
        self.workflows: Workflows | None = None
        self._cleanups = ThreadPoolExecutor(2, thread_name_prefix="f8a-jobs-cleanup")
        self._lock = threading.Condition()
        self._runs: dict[str, Sent] = {}
        self._tries: dict[TryMark, Sent] = {}
        self._applied: set[TryMark] = set()  # reports handed to the runner, not yet cleared
        self._topics: set[str] = set(wakeups.ALL)
        self._retries: list[float] = []  # when queued retries fall due (monotonic)
        self.poll = Every(settings.leader_poll_interval, due_at_once=True)
        self.heartbeats = Every(settings.run_lease / 4)
        self._last_reports = 0.0
        self._claiming = True

    def wakeup(self, topics: frozenset[str] = frozenset({wakeups.RUNS})) -> None:
        with self._lock:
            self._topics.update(topics)
        self._wake.set()

    # --- what the firing batch and the workflow runner hand over ------------------------------

    def room(self) -> int:
        with self._lock:
            return max(0, self.capacity - len(self._runs) - len(self._tries))

    free = room

    def take(self, claimed: list[ClaimedRun]) -> None:
        """Send ``claimed`` runs (claimed for this executor with ``worker = ""``, committed)."""
        items = [
            Sent(
                RUN_TASK,
                run_task_id(run.run_id, run.tries),
                run_message(run),
                RunPolicy.of(run.policy).queue or self.queue,
                RunPolicy.of(run.policy).timeout,
                run=run,
            )
            for run in hand_over_workflows(claimed, self.workflows)
        ]
        with self._lock:
            self._runs.update((item.message["run_id"], item) for item in items)
        self.sender.add(items)
        if items:
            self._wake.set()

    def run_tasks(self, starts: list[Start], sink: Callable[[TryOutcome], None]) -> None:
        """Send workflow tries (recorded started, ``worker = ""``); reports go to ``sink``."""
        items = {
            (start.run_id, start.task, start.part, start.try_number): Sent(
                TRY_TASK,
                try_task_id(start),
                try_message(start),
                start.queue or self.queue,
                start.timeout,
                sink=sink,
            )
            for start in starts
        }
        with self._lock:
            self._tries.update(items)
        self.sender.add(list(items.values()))
        self._wake.set()

    def call(self, name: str, work: Callable[[], None]) -> None:
        """A workflow's cleanups run here, beside the runner."""
        self._cleanups.submit(logged(name, work))

    # --- the loop -------------------------------------------------------------------------

    def step(self) -> None:
        now = time.monotonic()
        with self._lock:
            topics, self._topics = frozenset(self._topics), set()
            while self._retries and self._retries[0] <= now:
                heapq.heappop(self._retries)
                topics |= {wakeups.RUNS}
        polling = self.poll.due(now)
        if polling:
            topics = wakeups.ALL
        if wakeups.TASKS in topics:
            self.pause(max(0.0, self._last_reports + REPORT_EVERY - time.monotonic()))
            self._last_reports = time.monotonic()
            self._apply_reports()
        if wakeups.RUNS in topics and self._runs:
            self._reap_runs()
        if polling and self._tries:
            self._reap_tries()
        if self.heartbeats.due(now):
            self.heartbeat()
        if self._claiming and wakeups.RUNS in topics:
            self.claim()
        self.sender.send()

    def lost(self, error: LostLeadership) -> None:
        log.warning("%s: claiming no more runs", error)
        self._claiming = False
        self.on_lost()

    def wait_time(self) -> float:
        now = time.monotonic()
        moments = [now + self.poll.remaining(now), now + self.heartbeats.remaining(now)]
        with self._lock:
            moments += self._retries[:1]
        if self.sender.pending:
            moments.append(self.sender.send_at)
        return max(0.0, min(moments) - now)

    def claim(self) -> int:
        free = self.room()
        if free <= 0:
            return 0
        with self.engine.begin() as connection:
            claimed = runs.claim(connection, self.epoch, self.owner, free, utcnow(), IN_BROKER)
        self.take(claimed)
        return len(claimed)

    # --- reacting to what workers wrote ---------------------------------------------------

    def _apply_reports(self) -> None:
        """Hand the outcomes workers reported to the runner (it clears them as it applies)."""
        with self.engine.connect() as connection:
            rows = tasks.reports(connection)
        current = set()
        for row in rows:
            mark = (row.run_id, row.task, row.part, row.tries)
            current.add(mark)
            if mark in self._applied:
                continue
            self._applied.add(mark)
            with self._lock:
                item = self._tries.pop(mark, None)
                self._lock.notify_all()
            outcome = outcome_of(row)
            if item is not None and item.sink is not None:
                item.sink(outcome)
            elif self.workflows is not None:  # a try an earlier term sent
                self.workflows.add(outcome, handed=False)
        self._applied &= current

    def _reap_runs(self) -> None:
        """Plain runs that ended (workers recorded them) free their slots; cancelled ones that
        no worker took are revoked; messages no worker took for long are sent again."""
        with self._lock:
            ids = list(self._runs)
        by_id = self._run_rows(ids)
        ended = []
        now = time.monotonic()
        for run_id in ids:
            item, row = self._runs[run_id], by_id.get(run_id)
            if (
                row is not None
                and row.status == RunStatus.RUNNING
                and row.tries == item.message["tries"]
            ):
                if row.worker == IN_BROKER and item.due_again(now, self.resend_after):
                    self.sender.resend(item, self.resend_after)
                continue
            ended.append((item, row))
        with self._lock:
            for item, _ in ended:
                self._runs.pop(item.message["run_id"], None)
            self._lock.notify_all()
        for item, row in ended:
            self._ended(item, row)
        # ended while still in the broker (cancelled): no worker need see the message
        self.sender.revoke([item.task_id for item, row in ended if row and row.worker == IN_BROKER])

    def _run_rows(self, run_ids: list[str]) -> dict[str, Any]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(
                    job_runs.c.run_id,
                    job_runs.c.status,
                    job_runs.c.tries,
                    job_runs.c.worker,
                    job_runs.c.not_before,
                    job_runs.c.started_at,
                    job_runs.c.finished_at,
                ).where(among(connection, job_runs.c.run_id, run_ids))
            ).all()
        return {row.run_id: row for row in rows}

    def _ended(self, item: Sent, row: Any) -> None:
        if row is None or item.run is None:
            return
        run = item.run
        status = "retrying" if row.status == RunStatus.QUEUED else row.status
        metrics.run_ended(run.handler, status, row.started_at, row.finished_at)
        if run.trigger == Trigger.SCHEDULE and run.tries == 1 and row.started_at:
            metrics.run_started(run.scheduled_for, row.started_at)
        if row.status == RunStatus.QUEUED and row.not_before is not None:
            self._wake_at(row.not_before)

    def _wake_at(self, moment: datetime) -> None:
        with self._lock:
            heapq.heappush(self._retries, time.monotonic() + (moment - utcnow()).total_seconds())

    def _reap_tries(self) -> None:
        """Tries that ended without a report (timed out, cancelled, run again) free their
        slots, and are revoked; messages no worker took for long are sent again."""
        with self._lock:
            marks = list(self._tries)
        with self.engine.connect() as connection:
            states = tasks.try_states(connection, {mark[0] for mark in marks})
        gone, now = [], time.monotonic()
        for mark in marks:
            row = states.get(mark[:3])
            if row is not None and row.state == TaskState.RUNNING and row.tries == mark[3]:
                item = self._tries.get(mark)
                if item and row.worker == IN_BROKER and item.due_again(now, self.resend_after):
                    self.sender.resend(item, self.resend_after)
                continue
            gone.append(mark)
        with self._lock:
            items = [self._tries.pop(mark) for mark in gone if mark in self._tries]
            self._lock.notify_all()
        self.sender.revoke([item.task_id for item in items])

    def heartbeat(self) -> None:
        """Show the runs and tries whose messages wait in the broker are not orphans."""
        with self._lock:
            run_ids = list(self._runs)
            tries = [mark[:3] for mark in self._tries]
        if run_ids or tries:
            with self.engine.begin() as connection:
                runs.heartbeat(connection, self.owner, run_ids, utcnow(), waiting=True)
                tasks.heartbeat(connection, self.owner, tries, utcnow(), waiting=True)

    # --- stopping ---------------------------------------------------------------------------

    def stop_claiming(self) -> None:
        self._claiming = False

    def drain(self, timeout: float) -> bool:
        """Remote work goes on without this leader (workers record it; the next term adopts
        the rest): send what is unsent, and stop."""
        self.sender.send()
        return True

    def stop(self, timeout: float = 10.0) -> None:
        self._claiming = False
        super().stop(timeout)
        self._cleanups.shutdown(wait=False, cancel_futures=True)
        self.app.close()
