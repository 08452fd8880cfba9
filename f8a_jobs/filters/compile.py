"""Stage 2 of ``$filter``: a parsed query -> a SQLAlchemy Core ``Select``.

Every table and column is looked up in the reflected schema, every value becomes a bound
parameter. A ``"$T.col"`` reference names a column of this or an enclosing query; the
sub-query is correlated with exactly the tables it references.
"""

from __future__ import annotations

import datetime
import decimal
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, and_, func, or_, select
from sqlalchemy.sql import operators

from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.filters.parse import Condition, Query, Reference
from f8a_jobs.filters.schema import FilterSchema

COMPARISONS = {
    "=": operators.eq,
    "!=": operators.ne,
    "<>": operators.ne,
    "<": operators.lt,
    "<=": operators.le,
    ">": operators.gt,
    ">=": operators.ge,
}
NEGATED = {"!=", "<>", "not in", "is not"}


class Scope:
    """The tables a query reads, by the name the query uses for them."""

    def __init__(self, parent: Scope | None = None) -> None:
        self.parent = parent
        self.tables: dict[str, FromClause] = {}
        self.correlated: list[FromClause] = []

    def add(self, name: str, table: FromClause, path: str) -> None:
        if name in self.tables:
            raise InvalidInput(
                path, f"{name!r} is read twice; give one of them an alias ('{name} AS x')"
            )
        self.tables[name] = table

    def column(self, name: str, path: str) -> ColumnElement[Any]:
        found = self._find(name, path)
        if found is None:
            raise InvalidInput(path, self._unknown(name))
        return found

    def reference(self, name: str, path: str) -> ColumnElement[Any]:
        scope: Scope | None = self
        while scope is not None:
            found = scope._find(name, path)
            if found is not None:
                if scope is not self:
                    self.correlated.extend(
                        table for table in scope.tables.values() if found in table.c.values()
                    )
                return found
            scope = scope.parent
        raise InvalidInput(
            path, f"reference ${name}: {self._unknown(name)} in this or an enclosing query"
        )

    def _find(self, name: str, path: str) -> ColumnElement[Any] | None:
        table_name, _, column_name = name.rpartition(".")
        if table_name:
            table = self.tables.get(table_name)
            return table.c[column_name] if table is not None and column_name in table.c else None
        matches = [table.c[name] for table in self.tables.values() if name in table.c]
        if len(matches) > 1:
            raise InvalidInput(
                path, f"column {name!r} is in several tables; name it as 'table.{name}'"
            )
        return matches[0] if matches else None

    def _unknown(self, name: str) -> str:
        table_name, _, column_name = name.rpartition(".")
        if table_name and table_name not in self.tables:
            return (
                f"unknown table or alias {table_name!r} (this query reads {', '.join(self.tables)})"
            )
        return f"unknown column {name!r}"


def compile_query(query: Query, schema: FilterSchema, parent: Scope | None = None) -> Select[Any]:
    scope = Scope(parent)
    source = _source(query.table, query.alias, query.path + ".table", schema, scope)
    for join in query.joins:
        target = _source(join.table, join.alias, join.path + ".table", schema, scope)
        on = and_(
            *(
                _join_condition(scope, target, left, right, f"{join.path}.on.{left}")
                for left, right in join.on
            )
        )
        source = (
            target.join(source, on, isouter=True)
            if join.kind == "right"
            else source.join(target, on, isouter=join.kind == "left", full=join.kind == "full")
        )
    columns = _columns(query, scope)
    statement = select(*columns).select_from(source)
    if query.where:
        statement = statement.where(
            or_(*(and_(*(_condition(c, scope, schema) for c in group)) for group in query.where))
        )
    labels = {column.name: column for column in columns}
    grouped = [scope.column(name, f"{query.path}.group_by") for name in query.group_by]
    ordered = [
        (
            labels[name] if name in labels else scope.column(name, f"{query.path}.order_by"),
            descending,
        )
        for name, descending in query.order_by
    ]
    _check_shape(query, columns, grouped, [column for column, _ in ordered])
    statement = statement.group_by(*grouped)
    for column, descending in ordered:
        statement = statement.order_by(column.desc() if descending else column)
    if query.distinct:
        statement = statement.distinct()
    statement = statement.limit(query.limit).offset(query.offset)
    # Correlate with exactly what "$" references name, never by accident.
    return statement.correlate(*scope.correlated) if scope.correlated else statement.correlate(None)


def _join_condition(
    scope: Scope, target: FromClause, left: str, right: str, path: str
) -> ColumnElement[bool]:
    """``{"a.x": "b.y"}``: one side a column of the joined table, the other of a table before it."""
    columns = scope.column(left, path), scope.column(right, path)
    if [any(column is own for own in target.c) for column in columns].count(True) != 1:
        raise InvalidInput(
            path, "must link a column of the joined table to one of a table before it"
        )
    _check_same_kind(*columns, path)
    return columns[0] == columns[1]


def _check_shape(query: Query, columns: list[Any], grouped: list[Any], ordered: list[Any]) -> None:
    """Refuse what SQL itself refuses: columns outside GROUP BY, ORDER BY outside DISTINCT."""
    if query.count or grouped:
        _check_grouping(query, columns, grouped, ordered)
    if query.distinct:
        selected = _identities(columns)
        for column in ordered:
            if not _identities([column]) & selected:
                raise InvalidInput(
                    f"{query.path}.order_by",
                    f"with 'distinct', order by selected columns only, not {column.name!r}",
                )


def _check_grouping(
    query: Query, columns: list[Any], grouped: list[Any], ordered: list[Any]
) -> None:
    if query.select is None and not query.count:
        raise InvalidInput(f"{query.path}.select", "with 'group_by', name the columns to select")
    allowed = _identities(grouped) | (_identities(columns) if query.count else set())
    checks = [("select", column) for column in columns if not query.count]
    checks += [("order_by", column) for column in ordered]
    for key, column in checks:
        if not _identities([column]) & allowed:
            raise InvalidInput(
                f"{query.path}.{key}", f"{column.name!r} is neither grouped by nor counted"
            )


def _identities(columns: list[Any]) -> set[int]:
    """A column and, for a label, the column it names: either identifies it."""
    return {id(column) for column in columns} | {
        id(getattr(column, "element", column)) for column in columns
    }


def _source(
    name: str, alias: str | None, path: str, schema: FilterSchema, scope: Scope
) -> FromClause:
    table = schema.table(name, path)
    source = table.alias(alias) if alias else table
    scope.add(alias or name, source, path)
    return source


def _columns(query: Query, scope: Scope) -> list[Any]:
    if query.count:
        return [func.count().label("count")]
    if query.select is None:
        return _all_columns(scope)
    columns: dict[str, Any] = {}
    for name, alias in query.select:
        column = scope.column(name, f"{query.path}.select")
        label = alias or column.name
        if label in columns:
            raise InvalidInput(
                f"{query.path}.select", f"two columns are named {label!r}; give one an alias"
            )
        columns[label] = column.label(label)
    return list(columns.values())


def _all_columns(scope: Scope) -> list[Any]:
    """SELECT *: every column; a name seen twice is prefixed with its table ("versions_id")."""
    columns: dict[str, Any] = {}
    for table_name, table in scope.tables.items():
        for column in table.c:
            label = column.name if column.name not in columns else f"{table_name}_{column.name}"
            columns[label] = column.label(label)
    return list(columns.values())


def _condition(condition: Condition, scope: Scope, schema: FilterSchema) -> ColumnElement[bool]:
    column = scope.column(condition.column, condition.path)
    operator, value, path = condition.operator, condition.value, condition.path
    if isinstance(value, Query):
        return _subquery_condition(column, operator, compile_query(value, schema, scope), path)
    if isinstance(value, Reference):
        if operator not in COMPARISONS:
            raise InvalidInput(
                path, f"a column reference needs a comparison (=, <, …), not {operator!r}"
            )
        other = scope.reference(value.name, path)
        _check_same_kind(column, other, path)
        return COMPARISONS[operator](column, other)
    if value is None:
        if operator not in ("=", "is", "!=", "<>", "is not"):
            raise InvalidInput(
                path, f"null can be compared with =, !=, is or is not, not {operator!r}"
            )
        return column.is_not(None) if operator in NEGATED else column.is_(None)
    if isinstance(value, list):
        if operator not in ("=", "in", "!=", "<>", "not in"):
            raise InvalidInput(path, f"a list needs 'in' or 'not in', not {operator!r}")
        for item in value:
            _check_type(column, item, path)
        return column.not_in(value) if operator in NEGATED else column.in_(value)
    return _scalar_condition(column, operator, value, path)


def _subquery_condition(
    column: Any, operator: str, sub: Select[Any], path: str
) -> ColumnElement[bool]:
    if len(sub.selected_columns) != 1:
        raise InvalidInput(
            path, "a sub-query compared with a column must select exactly one column"
        )
    _check_same_kind(column, sub.selected_columns[0], path)
    if operator in ("in", "not in"):
        return column.not_in(sub) if operator == "not in" else column.in_(sub)
    if operator not in COMPARISONS:
        raise InvalidInput(path, f"a sub-query needs in, not in or a comparison, not {operator!r}")
    return COMPARISONS[operator](column, sub.scalar_subquery())


def _scalar_condition(column: Any, operator: str, value: Any, path: str) -> ColumnElement[bool]:
    if operator in ("in", "not in"):
        raise InvalidInput(path, f"{operator!r} needs a list or a sub-query, got {value!r}")
    if operator in ("is", "is not"):
        if not isinstance(value, bool):
            raise InvalidInput(path, f"{operator!r} takes null, true or false, got {value!r}")
        _check_type(column, value, path)
        return column.is_not(value) if operator == "is not" else column.is_(value)
    if operator.endswith("like"):
        if not isinstance(value, str):
            raise InvalidInput(path, f"{operator!r} needs a string pattern, got {value!r}")
        if kind_of(column) not in ("text", None):
            raise InvalidInput(
                path, f"{operator!r} matches text; {column.name!r} holds {kind_of(column)} values"
            )
        method = {
            "like": column.like,
            "ilike": column.ilike,
            "not like": column.not_like,
            "not ilike": column.not_ilike,
        }
        return method[operator](value)
    _check_type(column, value, path)
    if isinstance(value, bool) and operator not in ("=", "!=", "<>"):
        raise InvalidInput(path, f"true and false can be compared with = or !=, not {operator!r}")
    return COMPARISONS[operator](column, value)


def kind_of(column: Any) -> str | None:
    """What a column holds, as far as comparisons go: number, boolean, text, time or None."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return None
    if python_type is bool:
        return "boolean"
    if issubclass(python_type, int | float | decimal.Decimal):
        return "number"
    if issubclass(python_type, str):
        return "text"
    if issubclass(python_type, datetime.date | datetime.time | datetime.timedelta):
        return "time"
    return None


def _check_same_kind(column: Any, other: Any, path: str) -> None:
    kinds = kind_of(column), kind_of(other)
    if None not in kinds and kinds[0] != kinds[1]:
        raise InvalidInput(
            path,
            f"{column.name!r} holds {kinds[0]} values and {other.name!r} {kinds[1]} values: they cannot match",
        )


def _check_type(column: Any, value: Any, path: str) -> None:
    """Refuse a value the column can never be compared with (a word for a number, a boolean
    for a date) before the database does."""
    kind = kind_of(column)
    if kind == "boolean":
        fits = isinstance(value, bool)
    elif kind == "number":
        fits = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind is None:
        fits = not isinstance(value, bool)
    else:  # text, dates and times: written as strings
        fits = isinstance(value, str)
    if not fits:
        raise InvalidInput(
            path, f"column {column.name!r} holds {kind or 'other'} values; {value!r} cannot match"
        )
