"""Debug endpoints of ``$filter``: the SQL a query compiles to, and the rows it matches."""

from __future__ import annotations

from itertools import islice
from typing import Any

from f8a_jobs import filters
from f8a_jobs.api.context import Response, reply
from f8a_jobs.core.errors import InvalidInput


def show_select_query(body: dict[str, Any]) -> Response:
    return reply({"query": filters.show_sql(_query(body))})


def expand_filter(body: dict[str, Any], limit: int = 1000) -> Response:
    _query(body)
    rows = list(islice(filters.expand(body), limit + 1))
    matched = rows[:limit]
    return reply(
        {"matched": matched, "matched_count": len(matched), "truncated": len(rows) > limit}
    )


def _query(body: dict[str, Any]) -> Any:
    if not filters.is_filter(body):
        raise InvalidInput("body.$filter", "required: the query to run")
    return body[filters.FILTER_KEY]


# The original service's paths for the same operations.
show_select_query_alias = show_select_query
expand_filter_alias = expand_filter
