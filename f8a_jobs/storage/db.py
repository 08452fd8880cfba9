"""One SQLAlchemy engine per database URL, tuned per backend."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


@functools.cache
def get_engine(url: str) -> Engine:
    """The process-wide engine for ``url`` (engines own pools: make one, share it)."""
    return build_engine(url)


def build_engine(url: str) -> Engine:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    options: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 20}
    if make_url(url).get_driver_name() == "psycopg2":
        # Batch UPDATEs of many rows into few round trips (the scheduler's hot path).
        options["executemany_mode"] = "values_plus_batch"
    return create_engine(url, **options)


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
