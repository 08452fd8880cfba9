"""Writes what running tries logged (``capture``): one thread a process, one commit for
every try's new records, at least every ``F8A_JOBS_LOG_FLUSH_INTERVAL`` seconds. A try's last
records go with its outcome, in the commit that records it; only a try that ends while this
thread holds records of it not yet committed waits (milliseconds) for them to be, and has
its last records written here, so that a try recorded ended has its whole log.

While the database is unreachable the records wait here, up to ``F8A_JOBS_LOG_BUFFER_BYTES``;
past that the oldest go, and a record in their try's log says how many. A batch the database
refuses (it should not: lines are escaped) is dropped with a warning rather than retried
forever. The firing path never waits for this thread.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from f8a_jobs.core.settings import Settings
from f8a_jobs.execution import capture
from f8a_jobs.execution.batches import REFUSALS
from f8a_jobs.execution.capture import NOTE_LOGGER, Sink, TryLog, record_size
from f8a_jobs.execution.loop import Loop
from f8a_jobs.services.runs import logs
from f8a_jobs.services.runs.logs import Cut, LastRecords, TryKey

log = logging.getLogger(__name__)
CLOSE_WAIT = 5.0  # seconds a try's executor waits for its last records at most
DROPPED_SEQ = -1


class LogWriter(Loop, Sink):
    what = "run logs"

    def __init__(self, engine: Engine, interval: float, buffer_bytes: int) -> None:
        super().__init__("f8a-jobs-log-writer")
        self.engine = engine
        self.interval = interval
        self.buffer_bytes = buffer_bytes
        self._lock = threading.Lock()
        self._open: set[TryLog] = set()
        self._closing: dict[TryLog, threading.Event] = {}  # ended while records were held
        self._later: list[LastRecords] = []  # last records no outcome is recorded with
        self._holding: set[TryLog] = set()  # tries whose records are taken, not written
        self._rows: list[dict[str, Any]] = []  # taken, not written yet
        self._bytes = 0
        self._cuts: dict[TryKey, Cut] = {}
        self._dropped: dict[TryKey, list[int]] = {}  # records, bytes
        self.failures = 0  # writes that failed (the database was away), in all

    def opened(self, try_log: TryLog) -> None:
        with self._lock:
            self._open.add(try_log)

    def closed(self, try_log: TryLog) -> LastRecords | None:
        last = try_log.finish()
        written = None if last is not None else threading.Event()
        with self._lock:
            self._open.discard(try_log)
            if written is not None:
                self._closing[try_log] = written
        if written is None:
            return last
        self.wakeup()
        if not written.wait(CLOSE_WAIT):
            log.warning("the log of %s is not written yet; it will be", try_log.key)
        return None

    def write_later(self, last: LastRecords) -> None:
        with self._lock:
            self._later.append(last)
        self.wakeup()

    def wait_time(self) -> float:
        return self.interval

    def step(self) -> None:
        self.pause(0.005)  # tries ending together share the commit
        with self._lock:
            closing, self._closing = self._closing, {}
            later, self._later = self._later, []
            tries = [*self._open, *closing]
        try:
            self._take(tries, later)
            self._write()
        except Exception:
            with self._lock:
                self._closing.update(closing)
            raise
        for written in closing.values():
            written.set()

    def _take(self, tries: list[TryLog], later: list[LastRecords]) -> None:
        taken: list[tuple[TryLog | None, list[dict[str, Any]], Cut | None]]
        taken = [(try_log, *try_log.take()) for try_log in tries]
        taken += [(None, last.rows, last.cut) for last in later]
        for try_log, rows, cut in taken:
            if try_log is not None and (rows or cut is not None):
                self._holding.add(try_log)
            self._rows.extend(rows)
            self._bytes += sum(_size(row) for row in rows)
            if cut is not None:
                self._cuts[cut.key] = cut
        gone = 0
        while self._bytes > self.buffer_bytes and gone < len(self._rows):
            row = self._rows[gone]
            gone += 1
            size = _size(row)
            self._bytes -= size
            counts = self._dropped.setdefault(_key(row), [0, 0])
            counts[0] += 1
            counts[1] += size
        if gone:
            del self._rows[:gone]

    def _write(self) -> None:
        rows = self._rows + [_dropped_row(key, *counts) for key, counts in self._dropped.items()]
        if not rows and not self._cuts:
            return
        try:
            with self.engine.begin() as connection:
                logs.write(connection, rows, self._cuts.values())
        except REFUSALS as refusal:
            log.error(
                "the database refused %d log records; they are dropped: %s", len(rows), refusal
            )
        self._rows, self._bytes, self._cuts, self._dropped = [], 0, {}, {}
        for try_log in self._holding:
            try_log.release()
        self._holding.clear()

    def failed(self, error: Exception) -> float:
        self.failures += 1
        log.warning("writing run logs failed (%s); %d records wait", error, len(self._rows))
        return self.retry_after

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is held (one last try) and stop."""
        super().stop(timeout)
        try:
            self.step()
        except Exception:
            log.exception("run logs not written at stop: %d records", len(self._rows))


def _size(row: dict[str, Any]) -> int:
    return record_size(row["logger"], row["message"])


def _key(row: dict[str, Any]) -> TryKey:
    return TryKey(row["run_id"], row["task"], row["part"], row["try_number"])


def _dropped_row(key: TryKey, records: int, size: int) -> dict[str, Any]:
    return {
        **key.columns(),
        "seq": DROPPED_SEQ,
        "ts": datetime.now(UTC),
        "level": logging.WARNING,
        "logger": NOTE_LOGGER,
        "message": (
            f"[{records:,} records ({size:,} bytes) dropped: the database could not be reached "
            "and F8A_JOBS_LOG_BUFFER_BYTES was full]"
        ),
    }


def start_capturing(engine: Engine, settings: Settings) -> LogWriter:
    """Keep what handlers log in this process from now on (a process that runs handlers
    calls it once; again after a fork)."""
    writer = LogWriter(engine, settings.log_flush_interval, settings.log_buffer_bytes)
    writer.start()
    capture.install(writer, settings.log_max_bytes, settings.secrets)
    return writer
