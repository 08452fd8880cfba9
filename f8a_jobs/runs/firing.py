"""One scheduling pass's fires and next run times, written as one transaction.

APScheduler hands each due job to its executor (``fire``) and then to the job store
(``advance``); at the end of the pass the store flushes both here, so a due run is a ``queued``
row in the same commit that moves its job's next run time on: a crash can neither lose the run
nor fire the same slot twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from f8a_jobs.runs import lifecycle
from f8a_jobs.runs.lifecycle import Fire, LostLeadership
from f8a_jobs.schedules import utcnow

log = logging.getLogger(__name__)


class FireBatch:
    def __init__(
        self,
        engine: Engine,
        epoch: int,
        on_queued: Callable[[int], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.epoch = epoch
        self.on_queued = on_queued
        self.on_lost = on_lost
        self._lock = threading.Lock()
        self._fires: dict[str, Fire] = {}
        self._advances: dict[str, dict[str, Any]] = {}

    def fire(self, job_id: str, run_times: list[datetime], grace_seconds: int) -> None:
        with self._lock:
            self._fires[job_id] = Fire(job_id, tuple(run_times), grace_seconds)

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
            try:
                with self.engine.begin() as connection:
                    queued = lifecycle.fire(connection, self.epoch, advances, fires, utcnow())
            except LostLeadership as lost:
                log.warning("%s: this pass's fires are left to the new leader", lost)
                self._advances.clear()
                self._fires.clear()
                self.on_lost()
                return
            self._advances.clear()
            self._fires.clear()
        if queued:
            self.on_queued(queued)
