"""Handlers the tests load through F8A_JOBS_HANDLER_MODULES, the way an operator would."""

from __future__ import annotations

import threading

from f8a_jobs.handlers.base import BaseHandler

release = threading.Event()


class Fail(BaseHandler):
    """Always raises, to show a failed run is recorded and the schedule goes on."""

    def execute(self, message: str) -> None:
        raise RuntimeError(message)


class Block(BaseHandler):
    """Runs until the test releases it, to keep a run in progress."""

    def execute(self, timeout: float = 10.0) -> None:
        release.wait(timeout)
