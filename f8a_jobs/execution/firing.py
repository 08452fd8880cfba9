"""One scheduling pass's fires and next run times, written as one transaction.

APScheduler hands each due job to its executor (``fire``) and then to the job store
(``advance``); at the end of the pass the store flushes both here, so a due run is a ``queued``
row in the same commit that moves its job's next run time on: a crash can neither lose the run
nor fire the same slot twice. Runs the executor has room for are inserted already claimed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from f8a_jobs.core.clock import utcnow
from f8a_jobs.services import runs
from f8a_jobs.services.jobs import store as job_store
from f8a_jobs.services.runs import Claimant, ClaimedRun, Fire
from f8a_jobs.storage.fencing import LostLeadership, fence

log = logging.getLogger(__name__)


class Taker(Protocol):
    """The executor of the firing process: takes due runs as they are queued."""

    owner: str
    claim_worker: str | None  # what a claimed run's ``worker`` shows (remote executors: "")

    def room(self) -> int: ...

    def take(self, runs: list[ClaimedRun]) -> None: ...

    def wakeup(self) -> None: ...


def fire(
    connection: Connection,
    epoch: int,
    advances: list[dict[str, Any]],
    fires: list[Fire],
    now: datetime,
    tolerant: bool = False,
    claimant: Claimant | None = None,
) -> tuple[int, list[ClaimedRun]]:
    """Advance jobs' next run times and queue their due runs, in the caller's transaction,
    under ``epoch``'s fence. A job whose revision changed since the scheduler read it (paused,
    edited, deleted) is neither advanced nor run. Returns how many runs were queued, and those
    the ``claimant`` took at once (see ``runs.queue_fires``)."""
    fence(connection, epoch)
    advanced = job_store.advance(connection, advances)
    due = [item for item in fires if item.job_id in advanced]
    return runs.queue_fires(connection, epoch, due, now, tolerant, claimant)


class FireBatch:
    def __init__(
        self, engine: Engine, epoch: int, taker: Taker | None, on_lost: Callable[[], None]
    ) -> None:
        self.engine = engine
        self.epoch = epoch
        self.taker = taker
        self.on_lost = on_lost
        self._lock = threading.Lock()
        self._jobs: dict[str, Any] = {}  # what each job's runs need: its row
        self._fires: dict[str, Fire] = {}
        self._advances: dict[str, dict[str, Any]] = {}

    def read(self, row: Any) -> None:
        """The store read this job in this pass (``jobstore.COLUMNS``): what its run needs,
        if it falls due."""
        self._jobs[row.job_id] = row

    def fire(self, job_id: str, run_times: list[datetime], grace_seconds: int) -> None:
        row = self._jobs.get(job_id)
        with self._lock:
            self._fires[job_id] = (
                Fire(job_id, tuple(run_times), grace_seconds)
                if row is None
                else Fire(
                    job_id,
                    tuple(run_times),
                    grace_seconds,
                    row.handler,
                    row.kwargs,
                    row.policy,
                    row.labels,
                    row.priority,
                )
            )

    def advance(self, job_id: str, revision: int, next_run_time: datetime | None) -> None:
        with self._lock:
            self._advances[job_id] = {
                "job_id": job_id,
                "revision": revision,
                "next_run_time": next_run_time,
                "last_run": utcnow(),
            }

    def flush(self) -> None:
        """Write what the pass found; kept for the next try if the database is unavailable."""
        with self._lock:
            if not self._advances:
                return
            advances, fires = list(self._advances.values()), list(self._fires.values())
            claimant = (
                Claimant(self.taker.owner, self.taker.room(), self.taker.claim_worker)
                if self.taker
                else None
            )
            try:
                queued, claimed = self._write(advances, fires, claimant)
            except LostLeadership as lost:
                log.warning("%s: this pass's fires are left to the new leader", lost)
                queued, claimed = 0, []
                self.on_lost()
            for job_id in self._advances:  # written: their details are no longer needed
                self._jobs.pop(job_id, None)
            self._advances.clear()
            self._fires.clear()
        if self.taker and claimed:
            self.taker.take(claimed)
        if self.taker and queued > len(claimed):
            self.taker.wakeup()

    def _write(
        self, advances: list[dict[str, Any]], fires: list[Fire], claimant: Claimant | None
    ) -> tuple[int, list[ClaimedRun]]:
        try:
            with self.engine.begin() as connection:
                return fire(connection, self.epoch, advances, fires, utcnow(), claimant=claimant)
        except IntegrityError:  # a slot exists already: never expected, never a poison batch
            log.warning("a due run existed already; queueing the others")
            with self.engine.begin() as connection:
                return fire(connection, self.epoch, advances, fires, utcnow(), True, claimant)
