"""Stage 1 of ``$filter``: check a query's JSON structure and turn it into plain data.

Nothing here knows the database: names are only checked to be identifiers. Every error names
the exact key, as a path such as ``$filter.where.versions.id not in.$filter.table``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from f8a_jobs.core.errors import InvalidInput, refuse_unknown

FILTER_KEY = "$filter"
QUERY_KEYS = (
    "table",
    "select",
    "distinct",
    "count",
    "joins",
    "where",
    "order_by",
    "group_by",
    "limit",
    "offset",
)
IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
NAME = re.compile(rf"^({IDENTIFIER})(?:\.({IDENTIFIER}))?$")
TABLE = re.compile(rf"^({IDENTIFIER})(?:\s+as\s+({IDENTIFIER}))?$", re.IGNORECASE)
SELECTED = re.compile(
    rf"^({IDENTIFIER}(?:\.{IDENTIFIER})?)(?:\s+as\s+({IDENTIFIER}))?$", re.IGNORECASE
)
REFERENCE = re.compile(rf"^\$({IDENTIFIER}(?:\.{IDENTIFIER})?)$")
ORDER = re.compile(rf"^({IDENTIFIER}(?:\.{IDENTIFIER})?)(?:\s+(asc|desc))?$", re.IGNORECASE)
OPERATORS = (
    "=",
    "!=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "like",
    "ilike",
    "not like",
    "not ilike",
    "in",
    "not in",
    "is",
    "is not",
)
JOIN_TYPES = {
    "inner": "inner",
    "join": "inner",
    "inner_join": "inner",
    "left": "left",
    "left_join": "left",
    "left_outer_join": "left",
    "right": "right",
    "right_join": "right",
    "right_outer_join": "right",
    "full": "full",
    "full_join": "full",
    "full_outer_join": "full",
}
BIGINT = 2**63 - 1
MAX_DEPTH = 16  # sub-queries inside sub-queries; real queries use two or three


@dataclass(frozen=True)
class Reference:
    """``"$A.started_at"``: a column of this or an enclosing query."""

    name: str


@dataclass(frozen=True)
class Condition:
    column: str
    operator: str  # one of OPERATORS, "=" when the key names only a column
    value: Any  # None, bool, int, float, str, list, Reference or Query
    path: str


@dataclass(frozen=True)
class Join:
    table: str
    alias: str | None
    on: tuple[tuple[str, str], ...]
    kind: str
    path: str


@dataclass(frozen=True)
class Query:
    table: str
    alias: str | None
    path: str
    select: tuple[tuple[str, str | None], ...] | None = None  # (column, alias); None: all
    distinct: bool = False
    count: bool = False
    joins: tuple[Join, ...] = ()
    where: tuple[tuple[Condition, ...], ...] = ()  # OR of ANDs
    order_by: tuple[tuple[str, bool], ...] = ()  # (column or alias, descending)
    group_by: tuple[str, ...] = ()
    limit: int | None = None
    offset: int | None = None


def is_filter(value: Any) -> bool:
    return isinstance(value, dict) and FILTER_KEY in value


def parse(query: Any, path: str = FILTER_KEY, depth: int = 1) -> Query:
    """Validate one ``$filter`` query object (``depth``: 1 + how many queries enclose it)."""
    if depth > MAX_DEPTH:
        raise InvalidInput(path, f"sub-queries are nested more than {MAX_DEPTH} levels deep")
    if not isinstance(query, dict):
        raise InvalidInput(path, f"expected an object with at least 'table', got {_kind(query)}")
    refuse_unknown(query, QUERY_KEYS, path, "key")
    if "table" not in query:
        raise InvalidInput(f"{path}.table", "required: the table to read")
    table, alias = _table(query["table"], f"{path}.table")
    distinct = _flag(query, "distinct", path)
    count = _flag(query, "count", path)
    if count and ("select" in query or distinct):
        raise InvalidInput(f"{path}.count", "cannot be combined with 'select' or 'distinct'")
    return Query(
        table=table,
        alias=alias,
        path=path,
        select=_select(query["select"], f"{path}.select") if "select" in query else None,
        distinct=distinct,
        count=count,
        joins=_joins(query.get("joins", []), f"{path}.joins"),
        where=_where(query.get("where", {}), f"{path}.where", depth),
        order_by=tuple(
            _order(item, f"{path}.order_by") for item in _listed(query.get("order_by", []))
        ),
        group_by=tuple(
            _name(item, f"{path}.group_by") for item in _listed(query.get("group_by", []))
        ),
        limit=_count(query, "limit", path),
        offset=_count(query, "offset", path),
    )


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _table(value: Any, path: str) -> tuple[str, str | None]:
    match = TABLE.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise InvalidInput(
            path, f"{value!r} is not a table name such as 'analyses' or 'analyses AS A'"
        )
    return match.group(1), match.group(2)


def _flag(query: dict[str, Any], key: str, path: str) -> bool:
    value = query.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{path}.{key}", f"expected true or false, got {value!r}")
    return value


def _count(query: dict[str, Any], key: str, path: str) -> int | None:
    value = query.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= BIGINT:
        raise InvalidInput(f"{path}.{key}", f"expected a whole number of rows, got {value!r}")
    return value


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not NAME.match(value.strip()):
        raise InvalidInput(path, f"{value!r} is not a column such as 'name' or 'packages.name'")
    return value.strip()


def _select(value: Any, path: str) -> tuple[tuple[str, str | None], ...]:
    items = _listed(value)
    if not items:
        raise InvalidInput(path, "name at least one column")
    selected = []
    for item in items:
        match = SELECTED.match(item.strip()) if isinstance(item, str) else None
        if not match:
            raise InvalidInput(path, f"{item!r} is not a column such as 'packages.name as name'")
        selected.append((match.group(1), match.group(2)))
    return tuple(selected)


def _order(value: Any, path: str) -> tuple[str, bool]:
    match = ORDER.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise InvalidInput(path, f"{value!r} is not an ordering such as 'started_at desc'")
    return match.group(1), (match.group(2) or "").lower() == "desc"


def _joins(value: Any, path: str) -> tuple[Join, ...]:
    joins = []
    for index, join in enumerate(_listed(value)):
        where = f"{path}[{index}]"
        if not isinstance(join, dict):
            raise InvalidInput(
                where, f"expected an object with 'table' and 'on', got {_kind(join)}"
            )
        unknown = sorted(set(join) - {"table", "on", "type", "join_type"})
        if unknown:
            raise InvalidInput(f"{where}.{unknown[0]}", "unknown key; expected table, on, type")
        table, alias = _table(join.get("table"), f"{where}.table")
        on = join.get("on")
        if not isinstance(on, dict) or not on:
            raise InvalidInput(f"{where}.on", 'expected an object such as {"a.x": "b.y"}')
        pairs = tuple(
            (_name(left, f"{where}.on"), _name(right, f"{where}.on.{left}"))
            for left, right in on.items()
        )
        kind = join.get("type", join.get("join_type", "inner"))
        if kind not in JOIN_TYPES:
            raise InvalidInput(f"{where}.type", f"{kind!r} is not one of inner, left, right, full")
        joins.append(Join(table, alias, pairs, JOIN_TYPES[kind], where))
    return tuple(joins)


def _where(value: Any, path: str, depth: int) -> tuple[tuple[Condition, ...], ...]:
    groups = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        raise InvalidInput(
            path, "an empty list of alternatives matches nothing; omit 'where' instead"
        )
    parsed = []
    for index, group in enumerate(groups):
        where = f"{path}[{index}]" if isinstance(value, list) else path
        if not isinstance(group, dict):
            raise InvalidInput(where, f"expected an object of conditions, got {_kind(group)}")
        parsed.append(
            tuple(_condition(key, item, f"{where}.{key}", depth) for key, item in group.items())
        )
    return tuple(group for group in parsed if group)


def _condition(key: str, value: Any, path: str, depth: int) -> Condition:
    column, _, operator = key.strip().partition(" ")
    column = _name(column, path)
    operator = " ".join(operator.lower().split()) or "="
    if operator not in OPERATORS:
        raise InvalidInput(
            path, f"unknown operator {operator!r}; expected one of {', '.join(OPERATORS)}"
        )
    return Condition(column, operator, _value(value, path, depth), path)


def _value(value: Any, path: str, depth: int) -> Any:
    if is_filter(value):
        if set(value) != {FILTER_KEY}:
            raise InvalidInput(path, "a sub-query object holds only '$filter'")
        return parse(value[FILTER_KEY], f"{path}.{FILTER_KEY}", depth + 1)
    if isinstance(value, str) and value.startswith("$"):
        match = REFERENCE.match(value)
        if not match:
            raise InvalidInput(path, f"{value!r} is not a column reference such as '$A.started_at'")
        return Reference(match.group(1))
    if isinstance(value, list):
        for item in value:
            _scalar(item, path)
        return list(value)
    return _scalar(value, path)


def _scalar(value: Any, path: str) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise InvalidInput(
            path, "a string may not hold the NUL character (databases cannot store it)"
        )
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if abs(value) > BIGINT:
            raise InvalidInput(path, f"{value} is beyond the 64-bit integers a column can hold")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(path, f"{value} is not a finite number")
        return value
    raise InvalidInput(
        path, f"expected a string, number, boolean, null, list or sub-query, got {_kind(value)}"
    )
