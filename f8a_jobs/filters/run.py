"""Stage 3 of ``$filter``: run a compiled query read-only, with a timeout, streaming rows.

Rows come through a server-side cursor in batches, so memory stays flat however many match.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, Select, text
from sqlalchemy.exc import DataError, OperationalError

from f8a_jobs.core.errors import InvalidInput

PLAIN = frozenset({str, int, float, bool, type(None)})  # JSON as they are: the common case


def stream_rows(
    engine: Engine, statement: Select[Any], timeout: float, path: str, batch: int = 1000
) -> Iterator[dict[str, Any]]:
    """Each matching row as a JSON-ready dict named by the query's column labels.

    A value the database refuses, or a query past ``timeout`` seconds, is the query's fault:
    an ``InvalidInput`` about ``path``.
    """
    with engine.connect() as connection, connection.begin():
        _read_only(connection, timeout)
        try:
            result = connection.execution_options(stream_results=True, yield_per=batch).execute(
                statement
            )
            keys = list(result.keys())
            for row in result:
                yield {
                    key: value if type(value) in PLAIN else jsonable(value)
                    for key, value in zip(keys, row, strict=True)
                }
        except DataError as error:
            raise InvalidInput(
                path, f"the database refused a value: {_first_line(error)}"
            ) from None
        except OperationalError as error:
            if "statement timeout" not in str(error.orig):
                raise
            raise InvalidInput(
                path,
                f"the query ran longer than the {timeout:g} s allowed (F8A_JOBS_FILTER_TIMEOUT)",
            ) from None
        finally:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA query_only = 0")


def _first_line(error: DataError) -> str:
    return str(error.orig).strip().splitlines()[0]


def _read_only(connection: Connection, timeout: float) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        connection.execute(
            text("SELECT set_config('statement_timeout', :timeout, true)"),
            {"timeout": str(int(timeout * 1000))},
        )
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA query_only = 1")


def jsonable(value: Any) -> Any:
    """A database value as flow arguments carry it (JSON)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    return str(value)
