"""Bulk writes for the hot paths: PostgreSQL COPY and ``UPDATE … FROM (VALUES …)``,
executemany elsewhere.

COPY sends the rows as data (its text format, escaped), never as SQL text; every statement
here names only columns of our own table metadata, quoted by the dialect, and values travel
as data or bound parameters. COPY loads a batch of runs 2-3x faster than a multi-row INSERT.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg2
from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Connection,
    Table,
    and_,
    any_,
    bindparam,
    insert,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

# COPY text format: backslash escapes for the characters that delimit fields and rows.
ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")
NULL = "\\N"
ENCODE = json.JSONEncoder().encode  # json.dumps with its defaults, without its argument checks
COPY_SLICE = 1000  # rows formatted at a time while the server loads the slice before


def insert_rows(
    connection: Connection, table: Table, rows: list[dict[str, Any]], skip_conflicts: bool = False
) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` in one round trip.

    With ``skip_conflicts``, rows whose unique key exists already are left out
    (``ON CONFLICT DO NOTHING``, slower than COPY: for the paths that retry after a conflict).
    """
    if not rows:
        return
    if connection.dialect.name == "postgresql" and not skip_conflicts:
        _copy(connection, table, rows)
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).on_conflict_do_nothing() if skip_conflicts else insert(table)
    connection.execute(statement, rows)


def _copy(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    kinds = [isinstance(table.c[name].type, JSON) for name in columns]
    slices = (
        _copy_text(rows[start : start + COPY_SLICE], columns, kinds)
        for start in range(0, len(rows), COPY_SLICE)
    )
    quote = connection.dialect.identifier_preparer.quote
    statement = (
        f"COPY {quote(table.name)} ({', '.join(quote(name) for name in columns)}) FROM STDIN"
    )
    with _translated(statement), connection.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.copy_expert(statement, _Streamed(slices))


class _Streamed:
    """The file COPY reads, made a slice of rows at a time as the server asks for more: the
    server parses and indexes one slice while this process formats the next (a batch of ten
    thousand jobs loads a third faster than formatted whole first). psycopg2 sends what each
    ``read`` returns, whatever its size; an empty text ends the data."""

    def __init__(self, slices: Iterator[str]) -> None:
        self.slices = slices

    def read(self, _size: int = -1) -> str:
        return next(self.slices, "")

    readline = read


def _copy_text(rows: list[dict[str, Any]], columns: list[str], kinds: list[bool]) -> str:
    """Rows in COPY's text format, formatted a column at a time."""
    fields = [
        _column_fields([row[name] for row in rows], is_json)
        for name, is_json in zip(columns, kinds, strict=True)
    ]
    return "\n".join(map("\t".join, zip(*fields, strict=True))) + "\n"


def _column_fields(values: list[Any], is_json: bool) -> list[str]:
    """A column's COPY fields, a column at a time (a list comprehension, not a call a value:
    ten thousand jobs' rows are a quarter of a million fields). Scalars repeat down a column
    (a status, a batch's timestamp): each distinct one is formatted once."""
    if is_json:
        return [NULL if value is None else _escaped(ENCODE(value)) for value in values]
    seen: dict[Any, str] = {}
    fields = []
    for value in values:
        text = seen.get(value)
        if text is None:
            text = seen[value] = _field(value, False)
        fields.append(text)
    return fields


@contextmanager
def _translated(statement: str) -> Iterator[None]:
    """psycopg2's errors as SQLAlchemy's (``DataError``, ``IntegrityError``, …), as every other
    statement raises them: the raw cursor bypasses SQLAlchemy's translation."""
    try:
        yield
    except psycopg2.Error as error:
        raise DBAPIError.instance(statement, None, error, psycopg2.Error) from error


def _field(value: Any, is_json: bool) -> str:
    if value is None:
        return NULL
    return _escaped(ENCODE(value) if is_json else value if isinstance(value, str) else str(value))


def _escaped(text: str) -> str:
    return text.translate(ESCAPES) if NEEDS_ESCAPE.search(text) else text


CHUNK = 10_000  # ids a statement names at most: SQLite takes 32,766 parameters


def chunked(values: list[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    """``values`` in slices of ``size``, for statements that name each (``among``)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def among(connection: Connection, column: Column[Any], values: list[Any]) -> ColumnElement[bool]:
    """``column IN values``: on PostgreSQL one array parameter (``= ANY(%s)``), so a batch of
    hundreds of ids is not compiled into as many parameters each time."""
    if connection.dialect.name != "postgresql":
        return column.in_(values)
    return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))


def update_rows(
    connection: Connection,
    table: Table,
    match: tuple[str, ...],
    rows: list[dict[str, Any]],
    guards: dict[str, Any] | None = None,
    returning: str | None = None,
) -> list[Any]:
    """Set the other columns of ``rows`` on the rows of ``table`` whose ``match`` columns equal
    theirs and whose ``guards`` columns hold the given values: one ``UPDATE … FROM unnest(…)``
    on PostgreSQL, one statement a row elsewhere.

    Returns the ``returning`` column of the rows it changed (an empty list without it).
    """
    if not rows:
        return []
    guards = guards or {}
    if connection.dialect.name != "postgresql":
        return _update_each(connection, table, match, rows, guards, returning)
    names = tuple(rows[0])
    statement = _update_statement(connection.dialect, table, match, names, tuple(guards), returning)
    # One array literal per column: a single text value the server parses as data, several
    # times cheaper for it than psycopg2's ARRAY[…] of one literal per value.
    parameters = [
        _array_literal([row[name] for row in rows], isinstance(table.c[name].type, JSON))
        for name in names
    ]
    parameters += [_array_literal([value] * len(rows), False) for value in guards.values()]
    with _translated(statement), connection.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(statement, parameters)
        return [row[0] for row in cursor.fetchall()] if returning else []


@functools.lru_cache(maxsize=64)
def _update_statement(
    dialect: Dialect,
    table: Table,
    match: tuple[str, ...],
    names: tuple[str, ...],
    guards: tuple[str, ...],
    returning: str | None,
) -> str:
    """``UPDATE … FROM unnest(…)`` for these columns (built once: it names only our own
    columns, quoted by the dialect; every value is a parameter)."""
    changed = [name for name in names if name not in match]
    quote = dialect.identifier_preparer.quote
    target = quote(table.name)
    columns = [*names, *guards]
    batch_names = [*names, *(f"guard_{name}" for name in guards)]
    sql_type = [table.c[name].type.compile(dialect=dialect) for name in columns]
    assignments = ", ".join(f"{quote(name)} = batch.{quote(name)}" for name in changed)
    conditions = [f"{target}.{quote(name)} = batch.{quote(name)}" for name in match]
    conditions += [f"{target}.{quote(name)} = batch.{quote(f'guard_{name}')}" for name in guards]
    arrays = ", ".join(f"%s::{kind}[]" for kind in sql_type)
    statement = (
        f"UPDATE {target} SET {assignments} FROM unnest({arrays}) "
        f"AS batch ({', '.join(quote(name) for name in batch_names)}) "
        f"WHERE {' AND '.join(conditions)}"
    )
    if returning:
        statement += f" RETURNING {target}.{quote(returning)}"
    return statement


def _array_literal(values: list[Any], is_json: bool) -> str:
    """``values`` as a PostgreSQL array literal (``{"a",NULL,"b"}``): each element quoted,
    its backslashes and double quotes escaped, so any text is data."""
    if is_json:
        items = ["NULL" if value is None else _quoted(ENCODE(value)) for value in values]
    else:
        seen: dict[Any, str] = {}
        items = []
        for value in values:
            text = seen.get(value)
            if text is None:
                text = seen[value] = _array_element(value)
            items.append(text)
    return "{" + ",".join(items) + "}"


def _array_element(value: Any) -> str:
    """A scalar as an array literal's element (JSON values are ``_array_literal``'s)."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "t" if value else "f"
    elif isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        raise TypeError(f"no array literal for {type(value).__name__} values")
    return _quoted(text)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _update_each(
    connection: Connection,
    table: Table,
    match: tuple[str, ...],
    rows: list[dict[str, Any]],
    guards: dict[str, Any],
    returning: str | None,
) -> list[Any]:
    names = list(rows[0])
    statement = (
        update(table)
        .where(
            and_(
                *(table.c[name] == bindparam(f"b_{name}") for name in match),
                *(table.c[name] == value for name, value in guards.items()),
            )
        )
        .values({name: bindparam(f"b_{name}") for name in names if name not in match})
    )
    if not returning:
        connection.execute(statement, [{f"b_{name}": row[name] for name in names} for row in rows])
        return []
    changed = []
    for row in rows:
        if connection.execute(statement, {f"b_{name}": row[name] for name in names}).rowcount:
            changed.append(row[returning])
    return changed
