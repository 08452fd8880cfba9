"""The Celery executor (``F8A_JOBS_EXECUTOR=celery``): the leader claims runs as the thread
executor does, but sends each one, and each workflow try its runner starts, to ``f8a-jobs
worker`` processes through the broker: one message a try.

The database stays the truth. A claimed run or started try shows ``worker = ""`` while its
message waits in the broker, and this executor heartbeats it; a worker that takes it writes its
name there and heartbeats it from then on. Workers record plain runs themselves and report a
try's outcome on its row; the leader hears of both by NOTIFY (or its poll) and reacts: the
runner applies reports and starts dependents; ended runs free their slots. Nothing waits on a
result backend.

Failure paths: a message the broker refuses or loses is sent again (with backoff while the
broker is down; after ``F8A_JOBS_REMOTE_RESEND_AFTER`` while no worker took it), and a worker
drops a message whose try is no longer waiting, so a duplicate never runs. A worker that dies
stops heartbeating: the runner (tries) or the housekeeping (runs) runs it again as a new try. A
cancelled run or try that no worker took is revoked.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select

from f8a_jobs import metrics, wakeups
from f8a_jobs.executors.base import logged
from f8a_jobs.executors.messages import (
    HARD_LIMIT_GRACE,
    RUN_TASK,
    TRY_TASK,
    celery_app,
    run_message,
    run_task_id,
    try_message,
    try_task_id,
)
from f8a_jobs.executors.reports import outcome_of
from f8a_jobs.runs import QUEUED, RUNNING, SCHEDULE, lifecycle
from f8a_jobs.runs.lifecycle import IN_BROKER, ClaimedRun, LostLeadership
from f8a_jobs.runs.policy import RunPolicy
from f8a_jobs.runs.writer import RunWriter
from f8a_jobs.schedules import utcnow
from f8a_jobs.settings import Settings
from f8a_jobs.storage.bulk import among
from f8a_jobs.storage.tables import job_runs
from f8a_jobs.workflows import store as task_store
from f8a_jobs.workflows.engine import Start, TryOutcome

if TYPE_CHECKING:
    from f8a_jobs.workflows.runner import WorkflowRunner

log = logging.getLogger(__name__)
TryMark = tuple[str, str, int, int]  # run, task, part, try
MAX_BACKOFF = 30.0
# Reports arrive one by one, each with its NOTIFY: applying them at most this often lets one
# runner step (one write) take several, for little latency (the tries run on other machines).
REPORT_EVERY = 0.01


@dataclass
class Sent:
    """A message to send, or sent and not ended yet."""

    task_name: str
    task_id: str
    message: dict[str, Any]
    queue: str
    limit: float | None  # the soft time limit
    sent_at: float | None = None  # monotonic
    sends: int = 0
    run: ClaimedRun | None = None
    sink: Callable[[TryOutcome], None] | None = None

    def due_again(self, now: float, after: float) -> bool:
        """No worker took it for long: the broker may have lost it (twice as long each time)."""
        return self.sent_at is not None and now - self.sent_at > after * 2 ** (self.sends - 1)


class CeleryExecutor:
    remote: bool = True
    claim_worker: str | None = IN_BROKER

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        writer: RunWriter,
        owner: str,
        epoch: int,
        on_lost: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.owner = owner
        self.epoch = epoch
        self.on_lost = on_lost
        self.capacity = settings.remote_in_flight
        self.queue = settings.task_queue
        self.resend_after = settings.remote_resend_after
        self.poll_every = settings.leader_poll_interval
        self.heartbeat_every = settings.run_lease / 4
        self.app = celery_app(settings)
        self.app.conf.update(  # the leader never blocks on the broker: it retries itself
            broker_connection_retry=False,
            broker_transport_options={
                **self.app.conf.broker_transport_options,
                "confirm_publish": True,
                "max_retries": 0,
            },
        )
        self.workflows: WorkflowRunner | None = None
        self._cleanups = ThreadPoolExecutor(2, thread_name_prefix="f8a-jobs-cleanup")
        self._lock = threading.Condition()
        self._runs: dict[str, Sent] = {}
        self._tries: dict[TryMark, Sent] = {}
        self._unsent: deque[Sent] = deque()
        self._applied: set[TryMark] = set()  # reports handed to the runner, not yet cleared
        self._topics: set[str] = set(wakeups.ALL)
        self._retries: list[float] = []  # when queued retries fall due (monotonic)
        self._backoff = 0.0
        self._send_at = 0.0
        self._last_poll = 0.0
        self._last_reports = 0.0
        self._last_heartbeat = time.monotonic()
        self._claiming = True
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="f8a-jobs-remote", daemon=True)

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def start(self) -> None:
        self._thread.start()

    def wakeup(self, topics: frozenset[str] = frozenset({wakeups.RUNS})) -> None:
        with self._lock:
            self._topics.update(topics)
        self._wake.set()

    # --- what the firing batch and the workflow runner hand over ------------------------------

    def room(self) -> int:
        with self._lock:
            return max(0, self.capacity - len(self._runs) - len(self._tries))

    free = room

    def take(self, runs: list[ClaimedRun]) -> None:
        """Send ``runs`` (claimed for this executor with ``worker = ""``, and committed)."""
        plain = [run for run in runs if run.workflow is None and not run.resumed]
        for run in runs:
            if (run.workflow is not None or run.resumed) and self.workflows is not None:
                self.workflows.start_run(run)
        items = [
            Sent(
                RUN_TASK,
                run_task_id(run.run_id, run.tries),
                run_message(run),
                RunPolicy.of(run.policy).queue or self.queue,
                RunPolicy.of(run.policy).timeout,
                run=run,
            )
            for run in plain
        ]
        with self._lock:
            self._runs.update((item.message["run_id"], item) for item in items)
            self._unsent.extend(items)
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
            self._unsent.extend(items.values())
        self._wake.set()

    def call(self, name: str, work: Callable[[], None]) -> None:
        """A workflow's cleanups run here, beside the runner."""
        self._cleanups.submit(logged(name, work))

    # --- the loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self._wait_time())
            self._wake.clear()
            try:
                self._step()
            except LostLeadership as lost:
                log.warning("%s: claiming no more runs", lost)
                self._claiming = False
                self.on_lost()
            except Exception as error:
                log.warning("remote execution step failed (%s); retrying", error)
                self._stopped.wait(1.0)

    def _step(self) -> None:
        now = time.monotonic()
        with self._lock:
            topics, self._topics = frozenset(self._topics), set()
            while self._retries and self._retries[0] <= now:
                heapq.heappop(self._retries)
                topics |= {wakeups.RUNS}
        polling = now - self._last_poll >= self.poll_every
        if polling:
            self._last_poll, topics = now, wakeups.ALL
        if wakeups.TASKS in topics:
            self._stopped.wait(max(0.0, self._last_reports + REPORT_EVERY - time.monotonic()))
            self._last_reports = time.monotonic()
            self._apply_reports()
        if wakeups.RUNS in topics and self._runs:
            self._reap_runs()
        if polling and self._tries:
            self._reap_tries()
        if now - self._last_heartbeat >= self.heartbeat_every:
            self.heartbeat()
        if self._claiming and wakeups.RUNS in topics:
            self.claim()
        self._send()

    def _wait_time(self) -> float:
        now = time.monotonic()
        moments = [self._last_poll + self.poll_every, self._last_heartbeat + self.heartbeat_every]
        with self._lock:
            moments += self._retries[:1]
            if self._unsent:
                moments.append(self._send_at)
        return max(0.0, min(moments) - now)

    def claim(self) -> int:
        free = self.room()
        if free <= 0:
            return 0
        with self.engine.begin() as connection:
            claimed = lifecycle.claim(
                connection, self.epoch, self.owner, free, utcnow(), worker=IN_BROKER
            )
        self.take(claimed)
        return len(claimed)

    def _send(self) -> None:
        with self._lock:
            batch = list(self._unsent)
        if not batch or time.monotonic() < self._send_at:
            return
        sent = 0
        try:
            with self.app.producer_or_acquire() as producer:
                for item in batch:
                    self._publish(item, producer)
                    sent += 1
            self._backoff = 0.0
        except Exception as error:
            self._backoff = min(MAX_BACKOFF, max(0.5, self._backoff * 2))
            self._send_at = time.monotonic() + self._backoff
            log.warning(
                "sending %d runs to the broker failed (%s); trying again in %g s",
                len(batch) - sent,
                error,
                self._backoff,
            )
        finally:
            with self._lock:
                for _ in range(sent):
                    self._unsent.popleft()

    def _publish(self, item: Sent, producer: Any) -> None:
        limits = {}
        if item.limit:
            limits = {"soft_time_limit": item.limit, "time_limit": item.limit + HARD_LIMIT_GRACE}
        self.app.send_task(
            item.task_name,
            args=[item.message],
            task_id=item.task_id,
            queue=item.queue,
            producer=producer,
            retry=False,
            argsrepr=item.task_id,  # Celery would render the whole message, for logs only
            kwargsrepr="{}",
            **limits,
        )
        item.sent_at = time.monotonic()
        item.sends += 1

    # --- reacting to what workers wrote ---------------------------------------------------

    def _apply_reports(self) -> None:
        """Hand the outcomes workers reported to the runner (it clears them as it applies)."""
        with self.engine.connect() as connection:
            rows = task_store.reports(connection)
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
                ).where(among(connection, job_runs.c.run_id, ids))
            ).all()
        by_id = {row.run_id: row for row in rows}
        ended = []
        now = time.monotonic()
        for run_id in ids:
            item, row = self._runs[run_id], by_id.get(run_id)
            if row is not None and row.status == RUNNING and row.tries == item.message["tries"]:
                if row.worker == IN_BROKER and item.due_again(now, self.resend_after):
                    self._resend(item)
                continue
            ended.append((item, row))
        with self._lock:
            for item, _ in ended:
                self._runs.pop(item.message["run_id"], None)
            self._lock.notify_all()
        for item, row in ended:
            self._ended(item, row)
        # ended while still in the broker (cancelled): no worker need see the message
        self._revoke([item.task_id for item, row in ended if row and row.worker == IN_BROKER])

    def _ended(self, item: Sent, row: Any) -> None:
        if row is None or item.run is None:
            return
        run = item.run
        status = "retrying" if row.status == QUEUED else row.status
        metrics.run_ended(run.handler, status, row.started_at, row.finished_at)
        if run.trigger == SCHEDULE and run.tries == 1 and row.started_at:
            metrics.run_started(run.scheduled_for, row.started_at)
        if row.status == QUEUED and row.not_before is not None:
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
            states = task_store.try_states(connection, {mark[0] for mark in marks})
        gone, now = [], time.monotonic()
        for mark in marks:
            row = states.get(mark[:3])
            if row is not None and row.state == RUNNING and row.tries == mark[3]:
                item = self._tries.get(mark)
                if item and row.worker == IN_BROKER and item.due_again(now, self.resend_after):
                    self._resend(item)
                continue
            gone.append(mark)
        with self._lock:
            items = [self._tries.pop(mark) for mark in gone if mark in self._tries]
            self._lock.notify_all()
        self._revoke([item.task_id for item in items])

    def _resend(self, item: Sent) -> None:
        log.warning("no worker took %s for %g s: sending it again", item.task_id, self.resend_after)
        with self._lock:
            self._unsent.append(item)

    def _revoke(self, task_ids: list[str]) -> None:
        if not task_ids:
            return
        try:
            self.app.control.revoke(task_ids)
        except Exception as error:  # workers drop them anyway: their rows say so
            log.info("revoking %d messages failed (%s)", len(task_ids), error)

    def heartbeat(self) -> None:
        """Show the runs and tries whose messages wait in the broker are not orphans."""
        self._last_heartbeat = time.monotonic()
        with self._lock:
            runs = list(self._runs)
            tries = [mark[:3] for mark in self._tries]
        if runs or tries:
            with self.engine.begin() as connection:
                lifecycle.heartbeat(connection, self.owner, runs, utcnow(), waiting=True)
                task_store.heartbeat(connection, self.owner, tries, utcnow(), waiting=True)

    # --- stopping ---------------------------------------------------------------------------

    def stop_claiming(self) -> None:
        self._claiming = False

    def drain(self, timeout: float) -> bool:
        """Remote work goes on without this leader (workers record it; the next term adopts
        the rest): send what is unsent, and stop."""
        self._send()
        return True

    def stop(self) -> None:
        self._claiming = False
        self._stopped.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._cleanups.shutdown(wait=False, cancel_futures=True)
        self.app.close()
