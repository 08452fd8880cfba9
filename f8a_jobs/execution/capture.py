"""What a handler logs while its run or try executes, kept with that try.

``capturing`` marks the executing thread with the try (a context variable, so a line logged
by another run's thread at the same moment lands in that run's log, never in this one). A
``logging`` handler on the root logger hands each record made in a marked thread to the try's
``TryLog``, which keeps it bounded (``F8A_JOBS_LOG_MAX_BYTES``: the first half and the last
half are kept, one record says what was cut between them) and with secrets masked. Nothing is
written here: ``log_writer.LogWriter`` takes what running tries hold, at least every second,
many tries in one commit; what a try holds when it ends (``TryLog.last``) is committed with
its outcome, in the transaction that records it, so a try recorded ended has its whole log
and ending costs no commit of its own. A try that logged nothing costs one object and no I/O.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from f8a_jobs.core.json_values import storable_line
from f8a_jobs.core.masking import Masker, secret_values
from f8a_jobs.services.runs.logs import CUT_SEQ, Cut, LastRecords, TryKey

ROW_OVERHEAD = 40  # bytes a record costs beyond its message and logger name
NOTE_LOGGER = "f8a_jobs.logs"
_current: contextvars.ContextVar[TryLog | None] = contextvars.ContextVar(
    "f8a_jobs_try_log", default=None
)
_formatter = logging.Formatter()


class TryLog:
    """One try's records until the writer takes them: the head as it comes, then a tail that
    keeps the newest records within its half of the bound."""

    def __init__(
        self,
        key: TryKey,
        secrets: Callable[[], list[str]],
        max_bytes: int,
        base: Masker,
        sink: Sink | None,
    ) -> None:
        self.key = key
        self._secrets = secrets
        self._base = base
        self._masker: Masker | None = None
        self._sink = sink
        self._lock = threading.Lock()
        self._head_left = max_bytes // 2
        self._tail_budget = max_bytes - max_bytes // 2
        self._line_limit = max(256, max_bytes // 4)
        self._seq = 0
        self._new: list[dict[str, Any]] = []  # head records not taken yet
        self._tail: deque[tuple[dict[str, Any], int]] = deque()
        self._tail_bytes = 0
        self._taken_upto = 0  # the tail's records up to this seq were taken
        self._head_last: int | None = None  # set once records are cut
        self._cut_records = 0
        self._cut_bytes = 0
        self._cut_upto = 0  # the newest seq cut, of those taken before
        self._cut_shown = False
        self._partial: dict[str, str] = {}  # print/stderr text not ended by a newline
        self._held = False  # the writer took records it has not committed yet
        self._finished = False  # its last records went with its outcome
        self.last: LastRecords | None = None  # those, once it ended

    def mask(self, text: str | None) -> str | None:
        if self._masker is None:
            self._masker = self._base.joined(self._secrets())
        return self._masker(text)

    def add(self, level: int, logger: str, message: str, created: float) -> None:
        message = storable_line(self.mask(message) or "", self._line_limit)
        row = {
            **self.key.columns(),
            "seq": 0,
            "ts": datetime.fromtimestamp(created, UTC),
            "level": level,
            "logger": logger[:255],
            "message": message,
        }
        size = record_size(logger, message)
        with self._lock:
            self._seq += 1
            row["seq"] = self._seq
            first = self._seq == 1
            if self._head_last is None and size <= self._head_left:
                self._head_left -= size
                self._new.append(row)
            else:
                self._keep_in_tail(row, size)
        if first and self._sink is not None:
            self._sink.opened(self)

    def _keep_in_tail(self, row: dict[str, Any], size: int) -> None:
        if self._head_last is None:
            self._head_last = row["seq"] - 1
        self._tail.append((row, size))
        self._tail_bytes += size
        while self._tail_bytes > self._tail_budget and self._tail:
            gone, gone_size = self._tail.popleft()
            self._tail_bytes -= gone_size
            self._cut_records += 1
            self._cut_bytes += gone_size
            if gone["seq"] <= self._taken_upto:
                self._cut_upto = gone["seq"]

    def take(self) -> tuple[list[dict[str, Any]], Cut | None]:
        """For the writer: the records not taken yet, and the cut to apply (records taken
        before that the tail has since left behind, and what the cut record says now)."""
        with self._lock:
            if self._finished:
                return [], None
            rows, cut = self._take()
            self._held = self._held or bool(rows) or cut is not None
            return rows, cut

    def release(self) -> None:
        """The writer committed (or gave up) what it took."""
        with self._lock:
            self._held = False

    def finish(self) -> LastRecords | None:
        """At the try's end: its last records, to commit with its outcome; None while the
        writer holds earlier ones (then the writer writes these too, after them)."""
        with self._lock:
            if self._held:
                return None
            self._finished = True
            rows, cut = self._take()
            return LastRecords(rows, cut)

    def _take(self) -> tuple[list[dict[str, Any]], Cut | None]:
        rows, self._new = self._new, []
        if self._head_last is None:
            return rows, None
        if not self._cut_shown:
            self._cut_shown = True
            rows.append(self._cut_row())
        rows.extend(row for row, _ in self._tail if row["seq"] > self._taken_upto)
        if self._tail:
            self._taken_upto = self._tail[-1][0]["seq"]
        return rows, Cut(self.key, self._head_last + 1, self._cut_upto, self._note())

    def _cut_row(self) -> dict[str, Any]:
        first = self._tail[0][0] if self._tail else None
        return {
            **self.key.columns(),
            "seq": CUT_SEQ,
            "ts": first["ts"] if first else datetime.now(UTC),
            "level": logging.WARNING,
            "logger": NOTE_LOGGER,
            "message": self._note(),
        }

    def _note(self) -> str:
        return (
            f"[{self._cut_records:,} records ({self._cut_bytes:,} bytes) cut here: a try's log "
            "keeps its first and last half of F8A_JOBS_LOG_MAX_BYTES]"
        )

    def write_text(self, stream: str, level: int, text: str) -> None:
        """``print`` or stderr output: one record a line."""
        text = self._partial.pop(stream, "") + text
        *lines, rest = text.split("\n")
        if rest:
            self._partial[stream] = rest
        now = time.time()
        for line in lines:
            self.add(level, stream, line, now)

    def flush_text(self) -> None:
        for stream, rest in list(self._partial.items()):
            del self._partial[stream]
            level = logging.INFO if stream == "stdout" else logging.WARNING
            self.add(level, stream, rest, time.time())

    @property
    def opened(self) -> bool:
        return self._seq > 0


def record_size(logger: str, message: str) -> int:
    """The bytes a record counts against the bounds (a try's, the writer's buffer)."""
    text = len(message) if message.isascii() else len(message.encode())
    return ROW_OVERHEAD + len(logger) + text


class Sink:
    """Where tries' logs go: the process's ``LogWriter``."""

    def opened(self, log: TryLog) -> None:
        raise NotImplementedError

    def closed(self, log: TryLog) -> LastRecords | None:
        """The try ended: its last records, for its outcome (None: the sink wrote them)."""
        raise NotImplementedError

    def write_later(self, last: LastRecords) -> None:
        """Last records whose outcome is not recorded (the run recorded itself, or ended
        after its timeout): written on their own."""
        raise NotImplementedError


class CaptureHandler(logging.Handler):
    """On the root logger: a record made in a thread that runs a try goes to its log."""

    def handle(self, record: logging.LogRecord) -> bool:  # no handler lock: TryLog has its own
        log = _current.get()
        if log is None:
            return False
        log.add(record.levelno, record.name, _text(record), record.created)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)


def _text(record: logging.LogRecord) -> str:
    try:
        message = record.getMessage()
    except Exception as error:  # the handler's format string does not fit its arguments
        message = f"{record.msg!r} {record.args!r} (cannot be formatted: {error})"
    if record.exc_info and not record.exc_text:
        record.exc_text = _formatter.formatException(record.exc_info)
    if record.exc_text:
        message = f"{message}\n{record.exc_text}"
    if record.stack_info:
        message = f"{message}\n{record.stack_info}"
    return message


class _Capture:
    """What this process captures into: set by ``install``."""

    sink: Sink | None = None
    max_bytes = 1024 * 1024
    base = Masker(())


def install(sink: Sink | None, max_bytes: int, secrets: Iterable[str]) -> None:
    """Capture into ``sink`` from now on (None: keep nothing but the masking): what handlers
    log, and what they ``print`` or write to stderr (Datatailr's functions print)."""
    _Capture.sink, _Capture.max_bytes, _Capture.base = sink, max_bytes, Masker(secrets)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, CaptureHandler)]:
        root.removeHandler(handler)  # one made before a fork, or by an earlier install
    if sink is not None:
        root.addHandler(CaptureHandler())
        _capture_standard_streams()


def _capture_standard_streams() -> None:
    """``sys.stdout`` and ``sys.stderr`` pass a try thread's text to its log (once a
    process); other text goes where it went."""
    if not isinstance(sys.stdout, StandardStream):
        sys.stdout = StandardStream("stdout", sys.stdout, logging.INFO)  # type: ignore[assignment]
    if not isinstance(sys.stderr, StandardStream):
        sys.stderr = StandardStream("stderr", sys.stderr, logging.WARNING)  # type: ignore[assignment]


@contextmanager
def capturing(
    key: TryKey, kwargs: Mapping[str, Any], secret_kwargs: Iterable[str]
) -> Iterator[TryLog]:
    """Mark this thread as running ``key``'s try; its records go to the log yielded (whose
    ``mask`` masks the try's secrets in any text). On leaving, the log's ``last`` holds the
    records its outcome must be recorded with (``write_later`` those it is not)."""
    log = TryLog(
        key,
        lambda: secret_values(kwargs, secret_kwargs),
        _Capture.max_bytes,
        _Capture.base,
        _Capture.sink,
    )
    token = _current.set(log)
    try:
        yield log
    finally:
        log.flush_text()
        _current.reset(token)
        if log.opened and _Capture.sink is not None:
            log.last = _Capture.sink.closed(log)


def write_later(last: LastRecords | None) -> None:
    """Write ``last`` on its own: no outcome will be recorded with it."""
    if last is not None and _Capture.sink is not None:
        _Capture.sink.write_later(last)


def _by_logging(caller: Any) -> bool:
    """Whether ``logging`` writes (a ``StreamHandler`` made after the streams were replaced):
    the record it prints was captured already, by ``CaptureHandler``."""
    return bool(caller.f_globals.get("__name__") == "logging")


class StandardStream:
    """``sys.stdout`` or ``sys.stderr`` on a worker: text written by a thread that runs a try
    goes to its log, one record a line; any other text to the stream it replaces."""

    def __init__(self, name: str, stream: TextIO, level: int) -> None:
        self.name = name
        self.stream = stream
        self.level = level

    def write(self, text: str) -> int:
        log = _current.get()
        if log is None or _by_logging(sys._getframe(1)):
            return self.stream.write(text)  # a record a logging handler prints: captured as one
        log.write_text(self.name, self.level, text)
        return len(text)

    def flush(self) -> None:
        if _current.get() is None:
            self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)
