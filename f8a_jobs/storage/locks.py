"""Cross-process locks: PostgreSQL advisory locks, or file locks beside a SQLite database.

Two uses: ``exclusive`` serialises start-up work (migrations, default jobs) between processes
starting at once; ``LeaderLock`` elects the one process that fires jobs.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from sqlalchemy import Engine, text

from f8a_jobs.storage.db import is_postgresql


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(
        hashlib.sha256(f"f8a_jobs:{name}".encode()).digest()[:8], "big", signed=True
    )


def _lock_file(engine: Engine, name: str) -> Path | None:
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    return Path(database).resolve().with_name(f"{Path(database).name}.{name}.lock")


_memory_locks: dict[str, threading.Lock] = {}


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[None]:
    """Hold lock ``name`` for the block, waiting for other processes to release it."""
    if is_postgresql(engine):
        key = lock_key(name)
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
        return
    path = _lock_file(engine, name)
    lock: Any = FileLock(str(path)) if path else _memory_locks.setdefault(name, threading.Lock())
    with lock:
        yield


class LeaderLock:
    """A non-blocking lock held for as long as this process is the firing scheduler.

    On PostgreSQL it is a session advisory lock on a dedicated connection, so the database
    releases it the moment the holding process dies; that connection also LISTENs for
    wake-ups. On SQLite it is a file lock, released by the kernel when the holder dies.
    """

    def __init__(self, engine: Engine, name: str = "leader") -> None:
        self.engine = engine
        self.name = name
        self.connection: Any = None  # the raw psycopg2 connection while held (PostgreSQL)
        self._file_lock: Any = None

    @property
    def held(self) -> bool:
        return self.connection is not None or self._file_lock is not None

    def try_acquire(self) -> bool:
        if self.held:
            return True
        if is_postgresql(self.engine):
            return self._try_advisory()
        path = _lock_file(self.engine, self.name)
        lock: Any = (
            FileLock(str(path)) if path else _memory_locks.setdefault(self.name, threading.Lock())
        )
        try:
            acquired = lock.acquire(timeout=0) if path else lock.acquire(blocking=False)
        except Timeout:
            return False
        if acquired:
            self._file_lock = lock
        return bool(acquired)

    def _try_advisory(self) -> bool:
        raw = self.engine.raw_connection()
        raw.detach()  # this connection lives outside the pool for as long as we lead
        connection: Any = raw.dbapi_connection
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(self.name),))
            acquired = bool(cursor.fetchone()[0])
        if acquired:
            self.connection = connection
        else:
            connection.close()
        return acquired

    def still_held(self) -> bool:
        """False when the database connection holding the lock has gone away."""
        if self.connection is None:
            return self._file_lock is not None
        try:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        except Exception:
            self.release()
            return False

    def release(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            except Exception:  # noqa: S110 - closing a dead connection cannot fail usefully
                pass
            self.connection = None
        if self._file_lock is not None:
            self._file_lock.release()
            self._file_lock = None
