"""Which process of this server leads: one mark its processes share, so that any of them (the
gunicorn worker that serves a request) can say whether the server leads."""

from __future__ import annotations

import multiprocessing


class ServerMark:
    """The pid of the process of this server that leads (0: none), in memory its processes
    share: made before gunicorn forks its workers, set and cleared by the leading worker, and
    cleared by gunicorn's master when that worker dies."""

    def __init__(self) -> None:
        self._pid = multiprocessing.Value("q", 0)

    @property
    def leads(self) -> bool:
        return bool(self._pid.value)

    def leading(self, pid: int) -> None:
        with self._pid.get_lock():
            self._pid.value = pid

    def gone(self, pid: int) -> None:
        """``pid`` leads no more (its term ended, or the process died)."""
        with self._pid.get_lock():
            if self._pid.value == pid:
                self._pid.value = 0
