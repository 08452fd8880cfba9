"""Records every run in ``job_runs``, batching writes so firing is not one commit per run.

A run is recorded ``running`` when it starts and ``succeeded``/``failed`` when it ends. A run
younger than one flush interval is held back one flush, so the many short runs are written
once, with their final status; a long run shows up as ``running`` within two intervals.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from f8a_jobs.runs import FAILED, MISSED, RUNNING, SUCCEEDED, new_run_id
from f8a_jobs.schedules import utcnow
from f8a_jobs.storage.bulk import insert_rows, update_rows
from f8a_jobs.storage.tables import job_runs

log = logging.getLogger(__name__)
COLUMNS = (
    "status",
    "started_at",
    "finished_at",
    "handler",
    "kwargs",
    "error",
    "traceback",
    "missed_count",
)


def _row(run_id: str, job_id: str, scheduled_for: datetime, **values: Any) -> dict[str, Any]:
    row = dict.fromkeys(COLUMNS)
    row.update(values, run_id=run_id, job_id=job_id, scheduled_for=scheduled_for)
    return row


class RunRecorder:
    """Collects run records in memory and writes them every ``interval`` seconds."""

    def __init__(self, engine: Engine, interval: float = 0.02) -> None:
        self.engine = engine
        self.interval = interval
        self._lock = threading.Lock()
        self._open: dict[str, dict[str, Any]] = {}  # started, not finished
        self._inserts: dict[str, dict[str, Any]] = {}  # rows the database has not seen
        self._updates: dict[str, dict[str, Any]] = {}  # rows the database has in an older state
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="f8a-jobs-recorder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()

    def started(self, job_id: str, scheduled_for: datetime, run_id: str | None = None) -> str:
        """Record a run starting; ``run_id`` names a queued run the database already has."""
        row = _row(
            run_id or new_run_id(), job_id, scheduled_for, status=RUNNING, started_at=utcnow()
        )
        with self._lock:
            self._open[row["run_id"]] = row
            (self._updates if run_id else self._inserts)[row["run_id"]] = row
        self._nudge()
        return str(row["run_id"])

    def succeeded(self, run_id: str) -> None:
        self._finish(run_id, status=SUCCEEDED)

    def failed(
        self, run_id: str, error: BaseException, handler: str, kwargs: dict[str, Any]
    ) -> None:
        self._finish(
            run_id,
            status=FAILED,
            error=f"{type(error).__name__}: {error}",
            traceback="".join(traceback.format_exception(error)),
            handler=handler,
            kwargs=kwargs,
        )

    def _finish(self, run_id: str, **values: Any) -> None:
        with self._lock:
            row = self._open.pop(run_id)
            row.update(values, finished_at=utcnow())
            if run_id not in self._inserts:
                self._updates[run_id] = row
        self._nudge()

    def missed(self, job_id: str, scheduled: Sequence[datetime], reason: str) -> None:
        """One ``missed`` row standing for ``len(scheduled)`` runs that will not happen."""
        if len(scheduled) > 1:
            reason = f"{reason} ({len(scheduled)} runs from {scheduled[0].isoformat()} to {scheduled[-1].isoformat()})"
        row = _row(
            new_run_id(),
            job_id,
            scheduled[0],
            status=MISSED,
            error=reason,
            missed_count=len(scheduled),
        )
        log.warning("job %s: %s", job_id, reason)
        with self._lock:
            self._inserts[row["run_id"]] = row
        self._nudge()

    def _nudge(self) -> None:
        if not self._wake.is_set():  # setting an Event takes a lock: skip it when set already
            self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            self._stopping.wait(self.interval)  # let a burst of records gather into one batch
            self._wake.clear()
            try:
                self.flush(held_back=timedelta(seconds=self.interval))
            except Exception:
                log.exception("recording runs failed; retrying")
                self._stopping.wait(1.0)
            if self._inserts:
                self._wake.set()  # young runs were held back: look again next interval

    def flush(self, held_back: timedelta = timedelta(0)) -> None:
        """Write what was recorded, but runs that started less than ``held_back`` ago."""
        cutoff = utcnow() - held_back
        with self._lock:
            ready = [
                run_id
                for run_id, row in self._inserts.items()
                if row["status"] != RUNNING or row["started_at"] <= cutoff
            ]
            inserts = [dict(self._inserts.pop(run_id)) for run_id in ready]
            updates = [dict(row) for row in self._updates.values()]
            self._updates = {}
        if not inserts and not updates:
            return
        try:
            self._write(inserts, updates)
        except Exception:
            self._requeue(inserts, updates)
            raise

    def _write(self, inserts: list[dict[str, Any]], updates: list[dict[str, Any]]) -> None:
        with self.engine.begin() as connection:
            insert_rows(connection, job_runs, inserts)
            changed = [{name: row[name] for name in ("run_id", *COLUMNS)} for row in updates]
            update_rows(connection, job_runs, ("run_id",), changed)

    def _requeue(self, inserts: list[dict[str, Any]], updates: list[dict[str, Any]]) -> None:
        """Put back what a failed write held; a newer state of the same run wins."""
        with self._lock:
            for row in inserts:
                newer = self._updates.pop(row["run_id"], None) or self._open.get(row["run_id"])
                self._inserts.setdefault(row["run_id"], newer or row)
            for row in updates:
                if row["run_id"] not in self._inserts:
                    self._updates.setdefault(row["run_id"], row)
