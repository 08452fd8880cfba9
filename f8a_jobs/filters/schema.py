"""The tables ``$filter`` may read: reflected from the filter database, minus our own.

Identifiers in compiled queries come only from here, never from the request.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine, MetaData, Table

from f8a_jobs.core.errors import ForbiddenTable, InvalidInput
from f8a_jobs.storage.tables import OWN_TABLES


class FilterSchema:
    def __init__(self, engine: Engine, allowed: tuple[str, ...] | None) -> None:
        self.engine = engine
        self.allowed = allowed
        self._tables: dict[str, Table] = {}
        self._lock = threading.Lock()

    def readable(self, name: str) -> bool:
        return name not in OWN_TABLES and (self.allowed is None or name in self.allowed)

    def table(self, name: str, path: str) -> Table:
        if not self.readable(name):
            allowed = ", ".join(self.allowed) if self.allowed else "any table but the service's own"
            raise ForbiddenTable(
                path, f"table {name!r} may not be read by $filter (allowed: {allowed})"
            )
        if name not in self._tables:
            self._reflect()  # the table may have been created since we last looked
        if name not in self._tables:
            raise InvalidInput(path, f"unknown table {name!r}")
        return self._tables[name]

    def _reflect(self) -> None:
        with self._lock:
            metadata = MetaData()
            metadata.reflect(bind=self.engine, only=lambda name, _: self.readable(name), views=True)
            self._tables = dict(metadata.tables)
