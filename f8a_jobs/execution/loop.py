"""The skeleton of every background thread of the service: wait to be woken (or for
``wait_time``), take a ``step``, and react to a lost term or a failed step; plus ``Every``,
the periodic chores' timer (heartbeats, polls).

A subclass says what a step does and how long it may wait before the next; the loop never
sleeps through a wake-up or a stop. ``LostLeadership`` raised by a step ends the term's work
(``lost``: by default the loop stops and tells the term); any other error is logged and the
step is tried again after ``failed`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from f8a_jobs.storage.fencing import LostLeadership

log = logging.getLogger(__name__)


def _nothing() -> None:
    pass


class Loop:
    """A daemon thread that takes a ``step`` whenever it is woken or ``wait_time`` runs out."""

    what = "work"  # in log lines: "<what> failed (…); retrying"
    on_lost_log = "stopping"  # in the log line of a lost term: "<why it ended>: <this>"
    retry_after = 1.0

    def __init__(self, name: str, on_lost: Callable[[], None] = _nothing) -> None:
        self.on_lost = on_lost
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def start(self) -> None:
        self._thread.start()

    def wakeup(self) -> None:
        if not self._wake.is_set():
            self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the step under way, if any."""
        self._stopped.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)

    def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the loop stops meanwhile."""
        self._stopped.wait(seconds)

    def wait_time(self) -> float | None:
        """How long to wait for a wake-up before the next step (None: until one comes)."""
        return None

    def step(self) -> None:
        raise NotImplementedError

    def lost(self, error: LostLeadership) -> None:
        """The term ended: stop, and tell the term."""
        log.warning("%s: %s", error, self.on_lost_log)
        self._stopped.set()
        self.on_lost()

    def failed(self, error: Exception) -> float:
        """A step failed: log it; the seconds to wait before the next try."""
        log.warning("%s failed (%s); retrying", self.what, error)
        return self.retry_after

    def finished(self) -> None:
        """The loop has ended (release what the steps held)."""

    def _main(self) -> None:
        try:
            while not self._stopped.is_set():
                self._wake.wait(self.wait_time())
                self._wake.clear()
                if self._stopped.is_set():
                    break
                try:
                    self.step()
                except LostLeadership as lost:
                    self.lost(lost)
                except Exception as error:
                    self.pause(self.failed(error))
        finally:
            self.finished()


class Every:
    """A chore due every ``seconds`` (on a monotonic clock): ``due`` says whether it is, and
    marks it done; ``remaining`` is how long until it is due again."""

    def __init__(self, seconds: float, due_at_once: bool = False) -> None:
        self.seconds = seconds
        self.last = 0.0 if due_at_once else time.monotonic()

    def due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True

    def remaining(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return max(0.0, self.last + self.seconds - now)

    def now(self) -> None:
        """Make it due at once (something changed that the chore reads)."""
        self.last = 0.0
