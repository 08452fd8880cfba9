"""Records finished runs in grouped commits: many runs' states, results and flows at once.

Concurrent runs end within milliseconds of each other; one commit for all of them is what
makes firing fast end to end. A batch the database refuses (a NUL character, a value too long)
is split: each run is written alone, and a run refused even alone is recorded failed with the
database's reason, without what it produced. One bad record never holds back the others.
While the database is unreachable, outcomes wait in memory and are written when it returns.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError

from f8a_jobs import metrics, wakeups
from f8a_jobs.runs import FAILED, lifecycle
from f8a_jobs.runs.lifecycle import Outcome

log = logging.getLogger(__name__)
REFUSALS = (DataError, IntegrityError)  # the data is at fault, not the connection


class RunWriter:
    def __init__(self, engine: Engine, interval: float = 0.01) -> None:
        self.engine = engine
        self.interval = interval
        self._lock = threading.Lock()
        self._pending: list[Outcome] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="f8a-jobs-run-writer", daemon=True)

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what is pending (one last try) and stop."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        try:
            self.flush()
        except Exception:
            log.exception("runs not recorded at stop: %d", len(self._pending))

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            self._pending.append(outcome)
        if not self._wake.is_set():
            self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            self._stopping.wait(self.interval)  # let a burst of outcomes gather into one batch
            self._wake.clear()
            try:
                self.flush()
            except Exception as error:
                log.warning("recording runs failed (%s); retrying", error)
                self._stopping.wait(1.0)
                self._wake.set()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            self._write(batch)
        except REFUSALS as refusal:
            log.warning(
                "the database refused a batch of %d runs (%s); writing each alone",
                len(batch),
                refusal.orig,
            )
            self._write_each(batch)
        except Exception:
            self._put_back(batch)
            raise

    def _write(self, batch: list[Outcome], tolerant: bool = False) -> None:
        flows = sum(len(outcome.flows) for outcome in batch)
        with wakeups.changing(self.engine, wakeups.FLOWS if flows else None) as connection:
            recorded = lifecycle.finish(connection, batch, tolerant)
        for outcome in batch:
            if outcome.run.run_id in recorded:
                status = "retrying" if outcome.retry_at else outcome.status
                metrics.run_ended(
                    outcome.run.handler, status, outcome.started_at, outcome.finished_at
                )
        dropped = len(batch) - len(recorded)
        if dropped:
            log.warning(
                "%d runs were not recorded: another term failed them, or their job is gone", dropped
            )

    def _write_each(self, batch: list[Outcome]) -> None:
        for index, outcome in enumerate(batch):
            try:
                try:
                    self._write([outcome], tolerant=True)
                except REFUSALS as refusal:
                    self._write([refused(outcome, refusal)])
            except REFUSALS as refusal:
                log.error("run %s cannot be recorded at all: %s", outcome.run.run_id, refusal.orig)
            except Exception:
                self._put_back(batch[index:])
                raise

    def _put_back(self, batch: list[Outcome]) -> None:
        with self._lock:
            self._pending[:0] = batch


def refused(outcome: Outcome, refusal: Exception) -> Outcome:
    """The run recorded failed, saying what the database refused, without its output."""
    reason = str(getattr(refusal, "orig", refusal)).strip().splitlines()[0]
    error = f"the database refused this run's record: {reason}"
    if outcome.error:
        error += f"; the run's own error: {outcome.error}"
    return Outcome(outcome.run, FAILED, outcome.finished_at, outcome.started_at, error=error)
