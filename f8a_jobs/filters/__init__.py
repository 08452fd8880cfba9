"""Layer 3, ``$filter``: a JSON query (json2sql/mosql compatible) compiled safely to SQL and
streamed.

Stages, each testable alone: ``parse`` (structure) -> ``compile`` (against the reflected,
allowed schema) -> ``run`` (read-only, timed out, streamed). This module is the entry point.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Select
from sqlalchemy.dialects import postgresql

from f8a_jobs.core.settings import Settings, get_settings
from f8a_jobs.filters.compile import compile_query
from f8a_jobs.filters.parse import FILTER_KEY, is_filter, parse
from f8a_jobs.filters.run import stream_rows
from f8a_jobs.filters.schema import FilterSchema
from f8a_jobs.storage.db import get_engine

__all__ = ["FILTER_KEY", "compile_filter", "expand", "is_filter", "show_sql", "validate"]


@functools.cache
def _schema(url: str, allowed: tuple[str, ...] | None) -> FilterSchema:
    return FilterSchema(get_engine(url, "filter"), allowed)


def filter_schema(settings: Settings | None = None) -> FilterSchema:
    settings = settings or get_settings()
    return _schema(settings.filter_database_url or settings.database_url, settings.filter_tables)


def compile_filter(query: Any, path: str = FILTER_KEY) -> Select[Any]:
    return compile_query(parse(query, path), filter_schema())


def validate(argument_set: dict[str, Any], path: str = "") -> None:
    """Refuse (400/403) an argument set whose ``$filter`` cannot run."""
    if is_filter(argument_set):
        compile_filter(argument_set[FILTER_KEY], _key_path(path))


def _key_path(path: str) -> str:
    return f"{path}.{FILTER_KEY}" if path else FILTER_KEY


def show_sql(query: Any) -> str:
    """The SQL a filter runs, in PostgreSQL's dialect, with values inlined for reading."""
    statement = compile_filter(query)
    return str(
        statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )


def expand(argument_set: dict[str, Any], path: str = "") -> Iterator[dict[str, Any]]:
    """One argument set per matching row (its columns plus the extra keys), or the set itself."""
    if not is_filter(argument_set):
        yield argument_set
        return
    extra = {key: value for key, value in argument_set.items() if key != FILTER_KEY}
    settings = get_settings()
    key = _key_path(path)
    statement = compile_filter(argument_set[FILTER_KEY], key)
    for row in stream_rows(filter_schema(settings).engine, statement, settings.filter_timeout, key):
        yield {**row, **extra}
