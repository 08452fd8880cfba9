"""A handler that does nothing: try a schedule out, or measure the scheduler itself."""

from __future__ import annotations

from f8a_jobs.handlers.base import BaseHandler


class Noop(BaseHandler):
    """Does nothing; each run is still recorded."""

    def execute(self) -> None:
        return None
