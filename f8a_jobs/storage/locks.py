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


def lock_key(engine: Engine, name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name`` in ``engine``'s database.

    Advisory locks are server-wide: without the database in the key, two f8a-jobs databases
    on one server would share one leader.
    """
    scope = f"f8a_jobs:{engine.url.database}:{name}"
    return int.from_bytes(hashlib.sha256(scope.encode()).digest()[:8], "big", signed=True)


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
        key = lock_key(engine, name)
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

    On PostgreSQL it is a session advisory lock on one dedicated connection, kept for the
    process's lifetime (a standby polls on it, opening no new sessions); the database releases
    the lock the moment the holding session ends. The same connection LISTENs for wake-ups. On
    SQLite it is a file lock, released by the kernel when the holder dies.
    """

    def __init__(self, engine: Engine, name: str = "leader") -> None:
        self.engine = engine
        self.name = name
        self.connection: Any = None  # the dedicated psycopg2 connection (PostgreSQL)
        self._held = False
        self._file_lock: Any = None

    @property
    def held(self) -> bool:
        return self._held or self._file_lock is not None

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

    def _connect(self) -> Any:
        """The dedicated connection: opened once, again only after it broke."""
        if self.connection is None or self.connection.closed:
            raw = self.engine.raw_connection()
            raw.detach()  # lives outside the pool, for as long as the process
            self.connection = raw.dbapi_connection
            self.connection.autocommit = True
        return self.connection

    def _try_advisory(self) -> bool:
        try:
            with self._connect().cursor() as cursor:
                cursor.execute(
                    "SELECT pg_try_advisory_lock(%s)", (lock_key(self.engine, self.name),)
                )
                self._held = bool(cursor.fetchone()[0])
        except Exception:
            self._discard_connection()
            raise
        return self._held

    def backend_pid(self) -> int | None:
        """The PostgreSQL backend serving the lock connection (for operators and tests)."""
        return None if self.connection is None else int(self.connection.info.backend_pid)

    def still_held(self) -> bool:
        """False when the session holding the lock has gone away."""
        if not self._held:
            return self._file_lock is not None
        try:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        except Exception:
            self._discard_connection()
            return False

    def release(self) -> None:
        if self._held:
            self._held = False
            try:
                with self.connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_advisory_unlock(%s)", (lock_key(self.engine, self.name),)
                    )
            except Exception:  # the session is gone, and the lock with it
                self._discard_connection()
        if self._file_lock is not None:
            self._file_lock.release()
            self._file_lock = None

    def close(self) -> None:
        self.release()
        self._discard_connection()

    def _discard_connection(self) -> None:
        self._held = False
        if self.connection is not None:
            try:
                self.connection.close()
            except Exception:  # noqa: S110 - closing a dead connection cannot fail usefully
                pass
            self.connection = None
