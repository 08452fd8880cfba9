"""Run logs: how fast a handler's lines are captured and written, what capturing adds to a
handler's own logging, and what a try's end costs (its last records go with its outcome),
alone and beside a try logging in a tight loop."""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine

from f8a_jobs.execution import capture
from f8a_jobs.execution.log_writer import LogWriter
from f8a_jobs.services.runs.logs import TryKey
from f8a_jobs.storage.db import build_engine
from f8a_jobs.storage.migrate import migrate

LOUD_LINES = 100_000
SMALL_TRIES = 300
log = logging.getLogger("bench.logs")


def measure(url: str) -> dict[str, float]:
    engine = build_engine(url)
    migrate(engine)
    log.setLevel(logging.INFO)
    try:
        plain = _loop(None)
        captured = _written(engine, lambda: _loop(TryKey("loud", "", -1, 1)))
        writer = _writer(engine)
        quiet = _small_tries("quiet")
        stop = threading.Event()
        loud = threading.Thread(target=_loud_until, args=(stop,))
        loud.start()
        beside = _small_tries("beside")
        stop.set()
        loud.join()
        writer.stop()
    finally:
        capture.install(None, 0, ())
        engine.dispose()
    return {
        "lines_per_s": LOUD_LINES / captured,
        "capture_overhead": captured / plain,
        "end_us_quiet": quiet,
        "end_us_beside_loud": beside,
    }


def _writer(engine: Engine) -> LogWriter:
    writer = LogWriter(engine, 1.0, 64 * 1024 * 1024)
    writer.start()
    capture.install(writer, 1024 * 1024, ())
    return writer


def _written(engine: Engine, work: Callable[[], float]) -> float:
    """Seconds for ``work`` and for every record it made to be written."""
    started = time.perf_counter()
    writer = _writer(engine)
    work()
    writer.stop()  # writes what it holds, then returns
    return time.perf_counter() - started


def _loop(key: TryKey | None) -> float:
    """A handler logging ``LOUD_LINES`` lines (captured: its last records written alone, as
    no outcome is recorded here)."""
    started = time.perf_counter()
    if key is None:
        for number in range(LOUD_LINES):
            log.info("line %d of a handler's loop", number)
        return time.perf_counter() - started
    with capture.capturing(key, {}, ()) as try_log:
        for number in range(LOUD_LINES):
            log.info("line %d of a handler's loop", number)
    capture.write_later(try_log.last)
    return time.perf_counter() - started


def _small_tries(label: str) -> float:
    """The median microseconds a short try's end takes (its five lines handed over for its
    outcome's commit)."""
    ends = []
    for number in range(SMALL_TRIES):
        with capture.capturing(TryKey(f"{label}-{number}", "", -1, 1), {}, ()):
            for line in range(5):
                log.info("small try %d line %d", number, line)
            ending = time.perf_counter()
        ends.append(time.perf_counter() - ending)
    return statistics.median(ends) * 1e6


def _loud_until(stop: threading.Event) -> None:
    tries = 0
    while not stop.is_set():
        tries += 1
        with capture.capturing(TryKey(f"loud-{tries}", "", -1, 1), {}, ()) as try_log:
            for number in range(LOUD_LINES):
                if stop.is_set():
                    break
                log.info("line %d of a loud loop", number)
        capture.write_later(try_log.last)
