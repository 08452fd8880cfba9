"""A small copy of the fabric8-analytics tables, with rows, for ``f8a-jobs demo``.

Why: every ``$filter`` example of the documentation reads ``worker_results``, ``analyses`` and
their neighbours, which fabric8-analytics owns, not this service; on a fresh database they do
not exist. ``make run`` loads these into the embedded database so each example answers rows,
and the tests read the same rows.

Loading never touches tables that hold anything else: they may be real fabric8-analytics data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    select,
)

from f8a_jobs.core.errors import ConfigurationError

metadata = MetaData()
ecosystems = Table(
    "ecosystems", metadata, Column("id", Integer, primary_key=True), Column("name", String(255))
)
packages = Table(
    "packages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ecosystem_id", ForeignKey("ecosystems.id")),
    Column("name", String(255)),
)
versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("package_id", ForeignKey("packages.id")),
    Column("identifier", String(255)),
)
analyses = Table(
    "analyses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version_id", ForeignKey("versions.id")),
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
)
worker_results = Table(
    "worker_results",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("analysis_id", ForeignKey("analyses.id")),
    Column("worker", String(255)),
    Column("error", Boolean),
)


def _at(day: int, hour: int = 12) -> datetime:
    return datetime(2017, 4, day, hour)  # naive, as fabric8-analytics stores them


# In insertion order: each table after those its foreign keys name.
ROWS: dict[Table, list[dict[str, Any]]] = {
    ecosystems: [{"id": 1, "name": "npm"}, {"id": 2, "name": "maven"}, {"id": 3, "name": "pypi"}],
    packages: [
        {"id": 1, "ecosystem_id": 1, "name": "serve-static"},
        {"id": 2, "ecosystem_id": 2, "name": "net.iharder:base64"},
        {"id": 3, "ecosystem_id": 3, "name": "requests"},
    ],
    versions: [
        {"id": 1, "package_id": 1, "identifier": "1.7.1"},
        {"id": 2, "package_id": 1, "identifier": "1.7.2"},
        {"id": 3, "package_id": 2, "identifier": "2.3.9"},
        {"id": 4, "package_id": 3, "identifier": "2.31.0"},
    ],
    analyses: [
        {"id": 1, "version_id": 1, "started_at": _at(1), "finished_at": _at(1, 13)},
        {"id": 2, "version_id": 2, "started_at": _at(2), "finished_at": None},
        {"id": 3, "version_id": 3, "started_at": _at(3), "finished_at": None},
        {"id": 4, "version_id": 3, "started_at": _at(4), "finished_at": _at(4, 13)},  # newer
        {"id": 5, "version_id": 4, "started_at": _at(5), "finished_at": _at(5, 13)},
    ],
    worker_results: [
        {"id": 1, "analysis_id": 1, "worker": "github_details", "error": True},
        {"id": 2, "analysis_id": 2, "worker": "github_details", "error": False},
        {"id": 3, "analysis_id": 4, "worker": "metadata", "error": True},
    ],
}


def load(engine: Engine) -> bool:
    """Create the tables with their rows (True), or find them exactly so already (False).

    When any of them exists otherwise (other columns, other rows, or some missing), refuse
    with a ``ConfigurationError`` and change nothing.
    """
    with engine.begin() as connection:
        inspector = inspect(connection)
        if not any(inspector.has_table(table.name) for table in metadata.sorted_tables):
            metadata.create_all(connection)
            for table, rows in ROWS.items():
                connection.execute(table.insert(), rows)
            return True
        for table in metadata.sorted_tables:
            problem = _difference(connection, table)
            if problem:
                names = ", ".join(metadata.tables)
                raise ConfigurationError(
                    f"table {table.name!r} {problem}: nothing was changed (the demo loads only "
                    f"into a database holding none of {names}, or exactly its own)"
                )
        return False


def _difference(connection: Connection, table: Table) -> str | None:
    """How ``table`` in the database differs from the demo's, or None."""
    inspector = inspect(connection)
    if not inspector.has_table(table.name):
        return "is missing while other demo tables exist"
    if {column["name"] for column in inspector.get_columns(table.name)} != set(table.c.keys()):
        return "has other columns than the demo's"
    found = connection.execute(select(table).order_by(table.c.id)).mappings()
    if [dict(row) for row in found] != ROWS[table]:
        return "holds other rows than the demo's"
    return None
