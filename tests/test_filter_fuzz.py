"""Random and hostile ``$filter`` queries: each is a clear 400/403 or a read-only query."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, inspect, select, text

from f8a_jobs import filters
from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.settings import Settings, get_settings, use_settings
from f8a_jobs.filters.parse import OPERATORS
from f8a_jobs.storage import demo
from f8a_jobs.storage.tables import metadata as own_metadata
from tests.test_filters import data  # noqa: F401 - the fixture

HOSTILE = [
    "'; DROP TABLE analyses; --", '"; DELETE FROM versions; --', "analyses; DROP TABLE versions",
    "1=1", "' OR '1'='1", "\\", "\x00", "💥", "ünïcode", "A\"B", "$A.started_at", "$", "*",
    "pg_sleep(10)", "jobs", "job_runs", "alembic_version", "pg_catalog.pg_user", "information_schema.tables",
]
TABLES = ["analyses", "versions", "packages", "ecosystems", "worker_results", "analyses AS A", "versions AS v"]
COLUMNS = ["id", "name", "identifier", "started_at", "finished_at", "version_id", "package_id", "ecosystem_id",
           "analyses.id", "versions.id", "A.started_at", "packages.name", "error"]

def strategies(hostile: bool):
    """Plausible queries (real names, any values), or hostile ones (any names, any keys)."""
    columns = st.sampled_from(COLUMNS)
    names = st.one_of(columns, st.sampled_from(HOSTILE), st.text(max_size=12)) if hostile else columns
    tables = st.one_of(st.sampled_from(TABLES), st.sampled_from(HOSTILE), st.integers()) if hostile else st.sampled_from(TABLES)
    operators = st.sampled_from([*OPERATORS, "", "~", "; DROP", "IS NOT", "Like"] if hostile else [*OPERATORS, ""])
    keys = st.builds(lambda column, op: f"{column} {op}".strip(), names, operators)
    join = st.fixed_dictionaries(
        {"table": tables, "on": st.dictionaries(names, names, min_size=1, max_size=2)},
        optional={"type": st.sampled_from(["left", "inner", "right", "full", "left_join"] + (["cross", 7] if hostile else []))},
    )
    extra_keys = {"colour": st.just("red"), "limit": st.text(max_size=3), "distinct": st.just("yes")} if hostile else {}

    def query(depth: int):
        sub = st.deferred(lambda: query(depth - 1)).map(lambda q: {"$filter": q}) if depth else st.nothing()
        return st.fixed_dictionaries(
            {"table": tables},
            optional={
                "select": st.one_of(names, st.lists(st.builds(lambda c, a: f"{c} as {a}", names, names) | names, min_size=1, max_size=3)),
                "where": st.one_of(
                    st.dictionaries(keys, VALUES | sub, max_size=3),
                    st.lists(st.dictionaries(keys, VALUES, min_size=1, max_size=2), min_size=1, max_size=2),
                ),
                "joins": st.one_of(join, st.lists(join, max_size=2)),
                "order_by": st.one_of(names, st.lists(st.builds(lambda c, d: f"{c} {d}", names, st.sampled_from(["asc", "desc"])), max_size=2)),
                "limit": st.integers(0, 10**20) if not hostile else st.integers(-3, 10**20),
                "offset": st.integers(0, 5),
                "distinct": st.booleans(),
                "count": st.booleans(),
                "group_by": names,
                **extra_keys,
            },
        )

    return query(1)


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.sampled_from(HOSTILE),
    st.sampled_from(["$A.started_at", "$versions.id", "2017-04-02 20:00:00", "%p%"]),
    st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=5)), max_size=3),
)
QUERIES = st.one_of(strategies(hostile=False), strategies(hostile=True), st.sampled_from(HOSTILE), st.integers(), st.none())


def snapshot(engine):
    with engine.connect() as connection:
        counts = {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar()
            for table in [*demo.metadata.sorted_tables, *own_metadata.sorted_tables]
        }
    return sorted(inspect(engine).get_table_names()), counts


def test_random_filters_are_refused_clearly_or_only_read(data, backend):  # noqa: F811
    before = snapshot(data)

    @settings(max_examples=1500, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(query=QUERIES, extra=st.dictionaries(st.text(max_size=5), VALUES, max_size=2))
    def check(query, extra):
        argument_set = {**extra, "$filter": query}
        try:
            list(filters.expand(argument_set))
        except InvalidInput as refused:
            assert refused.status in (400, 403)
            assert refused.field and refused.field.startswith("$filter")
            assert refused.detail.startswith(f"{refused.field}: ")

    check()
    assert snapshot(data) == before


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_slow_filter_stops_at_the_timeout(data):  # noqa: F811
    with data.begin() as connection:
        connection.execute(text("CREATE TABLE big AS SELECT g AS id, 1 AS k FROM generate_series(1, 100000) g"))
    previous = get_settings()
    use_settings(Settings(**{**previous.__dict__, "filter_timeout": 0.2}))
    filters._schema.cache_clear()
    try:
        slow = {"table": "big AS a", "joins": {"table": "big AS b", "on": {"a.k": "b.k"}}, "count": True}
        with pytest.raises(InvalidInput, match="ran longer than the 0.2 s allowed"):
            list(filters.expand({"$filter": slow}))
    finally:
        use_settings(previous)
        with data.begin() as connection:
            connection.execute(text("DROP TABLE big"))
