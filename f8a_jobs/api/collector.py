"""ASGI middleware: the garbage collector paused while a bulk request is served.

``POST /jobs/apply`` takes up to 100,000 jobs: its body is decoded twice (validated, then
handed to the operation) into a few hundred thousand objects, which the cyclic collector would
walk again and again while the request holds them (``core.collector``).
"""

from __future__ import annotations

from typing import Any

from f8a_jobs.core.collector import collector_paused


class PauseCollector:
    """The collector paused for the requests to ``paths``; others are served as they are."""

    def __init__(self, app: Any, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        with collector_paused():
            await self.app(scope, receive, send)
