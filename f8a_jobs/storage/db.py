"""SQLAlchemy engines, one pool per purpose, so no part can starve another of connections.

Per process (PostgreSQL; see docs/operations.md, "Connections"):
- ``api``: the API's requests, ``F8A_JOBS_API_POOL_SIZE`` (+ as many again in bursts);
- ``filter``: ``$filter`` queries streaming rows, ``F8A_JOBS_EXECUTOR_THREADS`` + 4;
- the leader's term engine (``build_engine(url, pool_size=…)``): one connection per executor
  thread, for handlers' own writes, plus six for firing, claiming, recording, relaying and
  housekeeping; disposed of when the term ends;
- one more, outside any pool, holds the leader lock and listens for wake-ups.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from f8a_jobs.core.settings import get_settings

TERM_CONNECTIONS = (
    7  # firing, claiming + heartbeats, recording, relaying, alerting, housekeeping, spare
)


@functools.cache
def get_engine(url: str, purpose: str = "api") -> Engine:
    """The process-wide engine for ``url`` and ``purpose`` (engines own pools: share them)."""
    settings = get_settings()
    if purpose == "api":
        return build_engine(url, settings.api_pool_size, settings.api_pool_size)
    if purpose == "filter":
        return build_engine(url, settings.executor_threads + 4, 0)
    raise ValueError(f"unknown engine purpose {purpose!r}")


def build_engine(
    url: str, pool_size: int = 10, max_overflow: int = 10, pre_ping: bool = True
) -> Engine:
    """``pre_ping``: test each connection as it is checked out (a round trip); callers that
    retry a failed transaction themselves may skip it."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    options: dict[str, Any] = {
        "pool_pre_ping": pre_ping,
        "pool_size": pool_size,
        "max_overflow": max_overflow,
    }
    if make_url(url).get_driver_name() == "psycopg2":
        # Batch UPDATEs of many rows into few round trips (the scheduler's hot path).
        options["executemany_mode"] = "values_plus_batch"
    return create_engine(url, **options)


def term_engine(url: str) -> Engine:
    """The engine of one leadership term: executor threads and the term's own threads."""
    return build_engine(url, get_settings().executor_threads + TERM_CONNECTIONS, 0)


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
