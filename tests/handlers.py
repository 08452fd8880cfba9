"""Handlers the tests load through F8A_JOBS_HANDLER_MODULES, the way an operator would."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Literal

from f8a_jobs.flows.outbox import Flow
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


class Sleep(BaseHandler):
    """Works for ``seconds`` (a long-running run, for hand-over tests)."""

    def execute(self, seconds: float) -> str:
        time.sleep(seconds)
        return "slept"


class NulError(BaseHandler):
    """Fails with a message the database cannot store as it is."""

    def execute(self) -> None:
        raise RuntimeError("bad\x00byte")


class NulFlow(BaseHandler):
    """Emits a flow whose arguments PostgreSQL refuses (NUL in JSON)."""

    def execute(self) -> None:
        self.emit_flows([Flow("nulFlow", {"text": "a\x00b"})])


class Context(BaseHandler):
    """Returns its run context, to show a handler gets it."""

    def execute(self, label: Literal["a", "b"], run_id: str, scheduled_for: datetime) -> dict[str, str]:
        return {"label": label, "run_id": run_id, "scheduled_for": scheduled_for.isoformat()}


class Huge(BaseHandler):
    """Returns more than a run may keep."""

    def execute(self) -> str:
        return "x" * 100_000
