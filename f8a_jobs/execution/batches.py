"""Writes records in grouped commits from a thread of its own: many at once.

Records made by concurrent work end within milliseconds of each other; one commit for all of
them is what makes the work fast end to end, and the work need not wait for the commit. A
batch the database refuses (a NUL character, a value too long) is split: each record is
written alone, and a record refused even alone is replaced by what the subclass makes of the
refusal. One bad record never holds back the others. While the database is unreachable,
records wait in memory and are written when it returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy.exc import DataError, IntegrityError

from f8a_jobs.execution.loop import Loop

log = logging.getLogger(__name__)
REFUSALS = (DataError, IntegrityError)  # the data is at fault, not the connection
T = TypeVar("T")


class BatchWriter(Loop, Generic[T]):
    """Subclasses say how a batch is written (``write``) and what a refused record becomes
    (``refused``); ``written`` hears of every record once it is settled."""

    what = "records"  # in log lines

    def __init__(
        self, interval: float = 0.01, written: Callable[[list[T]], None] | None = None
    ) -> None:
        super().__init__(f"f8a-jobs-{self.what.replace(' ', '-')}-writer")
        self.interval = interval
        self.written = written
        self._lock = threading.Lock()
        self._pending: list[T] = []

    def write(self, batch: list[T], tolerant: bool) -> None:
        """Write ``batch`` in one transaction (``tolerant``: a record written alone again)."""
        raise NotImplementedError

    def refused(self, record: T, refusal: Exception) -> T:
        """What to write instead of ``record``, which the database refused."""
        raise NotImplementedError

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is pending (one last try) and stop."""
        super().stop(timeout)
        try:
            self.flush()
        except Exception:
            log.exception("%s not written at stop: %d", self.what, len(self._pending))

    def add(self, record: T) -> None:
        with self._lock:
            self._pending.append(record)
        if not self._wake.is_set():  # inline: a record is added for every run
            self._wake.set()

    def step(self) -> None:
        self.pause(self.interval)  # let a burst of records gather into one batch
        self._wake.clear()
        self.flush()

    def failed(self, error: Exception) -> float:
        log.warning("writing %s failed (%s); retrying", self.what, error)
        self.wakeup()  # what was put back is written after the pause
        return self.retry_after

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            self.write(batch, False)
        except REFUSALS as refusal:
            log.warning(
                "the database refused a batch of %d %s (%s); writing each alone",
                len(batch),
                self.what,
                refusal.orig,
            )
            self._write_each(batch)
            return
        except Exception:
            self._put_back(batch)
            raise
        self._settled(batch)

    def _write_each(self, batch: list[T]) -> None:
        for index, record in enumerate(batch):
            try:
                try:
                    self.write([record], True)
                except REFUSALS as refusal:
                    self.write([self.refused(record, refusal)], True)
            except REFUSALS as refusal:
                log.error("one of the %s cannot be written at all: %s", self.what, refusal.orig)
            except Exception:
                self._put_back(batch[index:])
                raise
            self._settled([record])

    def _put_back(self, batch: list[T]) -> None:
        with self._lock:
            self._pending[:0] = batch

    def _settled(self, batch: list[T]) -> None:
        if self.written is not None:
            self.written(batch)


def refusal_reason(refusal: Exception) -> str:
    """The first line of what the database said when it refused a record."""
    return str(getattr(refusal, "orig", refusal)).strip().splitlines()[0]
