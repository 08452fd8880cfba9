"""Which process of this server leads: one mark its processes share, so that any of them (the
gunicorn worker that serves a request) can say whether the server leads."""

from __future__ import annotations

import multiprocessing


class ServerMark:
    """The pid of the process of this server that leads (0: none), in memory its processes
    share: made before gunicorn forks its workers, set by the leading worker (again at every
    tick of its term), cleared when its term ends, and by gunicorn's master when it dies.

    No lock: a process killed while holding one would block the others. An 8-byte word is
    written whole; the one race left (the master clearing a dead worker's pid just as another
    worker starts leading) is mended by the leader's next tick.
    """

    def __init__(self) -> None:
        self._pid = multiprocessing.RawValue("q", 0)

    @property
    def leads(self) -> bool:
        return bool(self._pid.value)

    def leading(self, pid: int) -> None:
        if self._pid.value != pid:
            self._pid.value = pid

    def gone(self, pid: int) -> None:
        """``pid`` leads no more (its term ended, or the process died)."""
        if self._pid.value == pid:
            self._pid.value = 0
