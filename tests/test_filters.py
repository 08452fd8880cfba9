"""``$filter``: the original README's prepared queries, semantics, and errors naming the key."""

import copy

import pytest
from json2sql import select2sql
from sqlalchemy import inspect

from f8a_jobs import filters
from f8a_jobs.core.errors import ForbiddenTable, InvalidInput
from f8a_jobs.core.settings import Settings, get_settings, use_settings
from f8a_jobs.services import jobs
from f8a_jobs.storage import demo

JOINS = [
    {"on": {"analyses.id": "versions.id"}, "table": "versions"},
    {"on": {"versions.package_id": "packages.id"}, "table": "packages"},
    {"on": {"ecosystems.id": "packages.ecosystem_id"}, "table": "ecosystems"},
]
EPV = ["packages.name as name", "ecosystems.name as ecosystem", "versions.identifier as version"]
README_QUERIES = {
    "failed analyses": {
        "joins": [{"on": {"worker_results.analysis_id": "analyses.id"}, "table": "analyses"}, *JOINS],
        "select": EPV, "table": "worker_results", "where": {"worker_results.error": True},
    },
    "started after a date": {"joins": JOINS, "select": EPV, "table": "analyses",
                             "where": {"analyses.started_at >": "2017-04-02 20:00:00"}},
    "unfinished": {"joins": JOINS, "select": EPV, "table": "analyses", "where": {"analyses.finished_at": None}},
    "count": {"table": "analyses", "count": True},
    "unfinished without a newer finished analysis": {
        "joins": [
            {"on": {"A.version_id": "versions.id"}, "type": "left", "table": "versions"},
            {"on": {"versions.package_id": "packages.id"}, "type": "left", "table": "packages"},
            {"on": {"packages.ecosystem_id": "ecosystems.id"}, "type": "left", "table": "ecosystems"},
        ],
        "select": ["versions.identifier as version", "packages.name as name", "ecosystems.name as ecosystem"],
        "table": "analyses AS A",
        "distinct": True,
        "where": {
            "A.finished_at is": None,
            "versions.id not in": {"$filter": {
                "joins": [{"on": {"analyses.version_id": "versions.id"}, "type": "left", "table": "versions"}],
                "table": "analyses",
                "select": "versions.id",
                "where": {"analyses.finished_at is not": None, "analyses.started_at >": "$A.started_at"},
            }},
        },
    },
}


@pytest.fixture
def data(engine, db_url):
    previous = get_settings()
    use_settings(Settings(**{**previous.__dict__, "database_url": db_url}))
    filters._schema.cache_clear()
    demo.load(engine)
    yield engine
    demo.metadata.drop_all(engine)
    use_settings(previous)
    filters._schema.cache_clear()


def rows(query, **extra):
    return sorted(filters.expand({"$filter": query, **extra}), key=repr)


@pytest.mark.parametrize("backend", ["postgresql"])  # json2sql writes PostgreSQL's SQL
@pytest.mark.parametrize("name", README_QUERIES)
def test_readme_queries_return_what_json2sql_returns(data, name):
    query = README_QUERIES[name]
    ours = rows(query)
    assert ours, "every prepared query matches something in the sample data"
    sql = select2sql(**copy.deepcopy(query))
    with data.connect() as connection:
        expected = sorted((dict(row) for row in connection.exec_driver_sql(sql).mappings()), key=repr)
    assert ours == expected


def test_readme_query_results(data):
    assert rows(README_QUERIES["unfinished"]) == [
        {"ecosystem": "maven", "name": "net.iharder:base64", "version": "2.3.9"},
        {"ecosystem": "npm", "name": "serve-static", "version": "1.7.2"},
    ]
    assert rows(README_QUERIES["unfinished without a newer finished analysis"]) == [
        {"ecosystem": "npm", "name": "serve-static", "version": "1.7.2"},
    ]
    assert rows(README_QUERIES["count"]) == [{"count": 5}]


def test_each_row_carries_the_extra_keys(data):
    assert rows({"table": "ecosystems", "select": "name", "where": {"id": 1}}, force=True) == [
        {"name": "npm", "force": True}
    ]


@pytest.mark.parametrize(
    ("where", "names"),
    [
        ({"name": "npm"}, ["npm"]),
        ({"name !=": "npm"}, ["maven", "pypi"]),
        ({"name": ["npm", "pypi"]}, ["npm", "pypi"]),
        ({"name not in": ["npm", "pypi"]}, ["maven"]),
        ({"name like": "%p%"}, ["npm", "pypi"]),
        ({"name ilike": "M%"}, ["maven"]),
        ({"name not like": "%p%"}, ["maven"]),
        ({"id >=": 2, "id <": 3}, ["maven"]),
        ([{"name": "npm"}, {"id": 3}], ["npm", "pypi"]),
        ({"id in": {"$filter": {"table": "packages", "select": "ecosystem_id", "where": {"name like": "s%"}}}}, ["npm"]),
        ({"id >": {"$filter": {"table": "packages", "count": True}}}, []),
    ],
)
def test_where_semantics(data, where, names):
    found = [row["name"] for row in filters.expand({"$filter": {"table": "ecosystems", "select": "name", "where": where}})]
    assert sorted(found) == names


def test_nulls_order_limit_offset_distinct_and_all_columns(data):
    unfinished = {"table": "analyses", "select": "id", "where": {"finished_at": None}, "order_by": "id desc"}
    assert [row["id"] for row in filters.expand({"$filter": unfinished})] == [3, 2]
    finished = {"table": "analyses", "select": "id", "where": {"finished_at !=": None}, "order_by": ["id"], "limit": 2, "offset": 1}
    assert [row["id"] for row in filters.expand({"$filter": finished})] == [4, 5]
    distinct = {"table": "analyses", "select": "version_id", "distinct": True, "order_by": "version_id"}
    assert [row["version_id"] for row in filters.expand({"$filter": distinct})] == [1, 2, 3, 4]
    everything = {"table": "packages", "joins": {"table": "ecosystems", "on": {"packages.ecosystem_id": "ecosystems.id"}},
                  "where": {"packages.id": 1}}
    assert rows(everything) == [{"id": 1, "ecosystem_id": 1, "name": "serve-static", "ecosystems_id": 1, "ecosystems_name": "npm"}]
    started = {"table": "analyses", "select": "started_at", "where": {"id": 1}}
    assert rows(started) == [{"started_at": "2017-04-01T12:00:00"}]


def test_show_sql_is_postgresql_with_values_inlined(data):
    sql = filters.show_sql(README_QUERIES["unfinished without a newer finished analysis"])
    assert sql.startswith("SELECT DISTINCT versions.identifier AS version")
    assert "FROM analyses AS \"A\" LEFT OUTER JOIN versions" in sql
    assert "versions.id NOT IN (SELECT versions.id" in sql and '"A".started_at' in sql
    assert "'2017-04-02 20:00:00'" in filters.show_sql(README_QUERIES["started after a date"])


@pytest.mark.parametrize(
    ("query", "path", "words"),
    [
        ("analyses", "$filter", "expected an object"),
        ({}, "$filter.table", "required"),
        ({"table": "analyses", "colour": 1}, "$filter.colour", "unknown key"),
        ({"table": "nosuch"}, "$filter.table", "unknown table 'nosuch'"),
        ({"table": "analyses; DROP TABLE analyses"}, "$filter.table", "is not a table name"),
        ({"table": "analyses", "select": "idd"}, "$filter.select", "unknown column 'idd'"),
        ({"table": "analyses", "select": "versions.id"}, "$filter.select", "unknown table or alias 'versions'"),
        ({"table": "analyses AS A", "select": "analyses.id"}, "$filter.select", "unknown table or alias 'analyses'"),
        ({"table": "analyses", "where": {"id ~": 1}}, "$filter.where.id ~", "unknown operator"),
        ({"table": "analyses", "where": {"id": "one"}}, "$filter.where.id", "holds number values"),
        ({"table": "analyses", "where": {"started_at <": False}}, "$filter.where.started_at <", "holds time values"),
        ({"table": "analyses", "where": {"started_at": False}}, "$filter.where.started_at", "holds time values"),
        ({"table": "analyses", "where": {"id like": "1%"}}, "$filter.where.id like", "matches text"),
        ({"table": "analyses AS A", "where": {"started_at": "$A.id"}}, "$filter.where.started_at", "cannot match"),
        ({"table": "analyses", "group_by": "version_id"}, "$filter.select", "name the columns"),
        ({"table": "analyses", "select": ["id"], "group_by": "version_id"}, "$filter.select", "neither grouped"),
        ({"table": "analyses", "select": "version_id", "distinct": True, "order_by": "id"}, "$filter.order_by", "selected columns only"),
        ({"table": "worker_results", "where": {"error >": True}}, "$filter.where.error >", "compared with = or !="),
        ({"table": "analyses", "where": {"id >": None}}, "$filter.where.id >", "null can be compared"),
        ({"table": "analyses", "where": {"id": {"a": 1}}}, "$filter.where.id", "expected a string, number"),
        ({"table": "analyses", "where": {"id": 2**70}}, "$filter.where.id", "64-bit"),
        ({"table": "analyses", "where": {"id <": "$B.id"}}, "$filter.where.id <", "reference $B.id"),
        ({"table": "analyses", "count": True, "select": "id"}, "$filter.count", "cannot be combined"),
        ({"table": "analyses", "limit": -1}, "$filter.limit", "whole number"),
        ({"table": "analyses", "joins": [{"table": "versions", "on": {}}]}, "$filter.joins[0].on", "expected an object"),
        ({"table": "analyses", "joins": [{"table": "versions", "on": {"x": "y"}, "type": "cross"}]}, "$filter.joins[0].type", "not one of"),
        ({"table": "analyses", "where": {"id in": {"$filter": {"table": "versions"}}}}, "$filter.where.id in", "exactly one column"),
        ({"table": "analyses", "where": {"id in": {"$filter": {"table": "nope"}}}}, "$filter.where.id in.$filter.table", "unknown table"),
        ({"table": "versions", "joins": {"table": "versions", "on": {"versions.id": "versions.id"}}}, "$filter.joins[0].table", "read twice"),
    ],
)
def test_bad_filters_name_the_exact_key(data, query, path, words):
    with pytest.raises(InvalidInput) as caught:
        list(filters.expand({"$filter": query}))
    assert caught.value.field == path
    assert words in caught.value.detail


def test_the_services_own_tables_are_never_readable(data):
    for table in ("jobs", "job_runs", "flow_outbox", "service_state", "alembic_version"):
        with pytest.raises(ForbiddenTable) as caught:
            filters.compile_filter({"table": table})
        assert caught.value.status == 403
    with pytest.raises(ForbiddenTable):
        filters.compile_filter({"table": "analyses", "where": {"id in": {"$filter": {"table": "jobs", "select": "job_id"}}}})


def test_only_the_allowed_tables_are_readable(data):
    use_settings(Settings(**{**get_settings().__dict__, "filter_tables": ("analyses",)}))
    filters._schema.cache_clear()
    assert rows({"table": "analyses", "count": True}) == [{"count": 5}]
    with pytest.raises(ForbiddenTable) as caught:
        filters.compile_filter({"table": "analyses", "joins": {"table": "versions", "on": {"analyses.version_id": "versions.id"}}})
    assert caught.value.field == "$filter.joins[0].table" and "allowed: analyses" in caught.value.detail


def test_hostile_values_are_only_ever_values(data):
    hostile = ["'; DROP TABLE analyses; --", '" OR 1=1 --', "\\'", "ünïcødé ✓", "%", "$"[:0] + "a\"b"]
    for value in hostile:
        assert rows({"table": "packages", "where": {"name": value}}) == []
    assert "analyses" in inspect(data).get_table_names()
    assert rows({"table": "analyses", "count": True}) == [{"count": 5}]


def test_a_job_with_a_bad_filter_is_refused_at_creation(data):
    kwargs = {"flow_name": "bayesianFlow", "flow_arguments": [{"force": True}, {"$filter": {"table": "analyses", "select": "nope"}}]}
    with pytest.raises(InvalidInput) as caught:
        jobs.parse_job({"handler": "FlowScheduling", "kwargs": kwargs})
    assert caught.value.field == "kwargs.flow_arguments[1].$filter.select"


@pytest.mark.parametrize(
    ("query", "path", "words"),
    [
        ({"table": "analyses", "where": {"id is": False}}, "$filter.where.id is", "holds number values"),
        ({"table": "analyses", "joins": {"table": "versions", "on": {"identifier": "identifier"}, "type": "full"}},
         "$filter.joins[0].on.identifier", "must link a column of the joined table"),
        ({"table": "analyses", "joins": {"table": "versions", "on": {"identifier": "started_at"}}},
         "$filter.joins[0].on.identifier", "cannot match"),
        ({"table": "packages", "where": {"name": "a\x00b"}}, "$filter.where.name", "NUL"),
    ],
)
def test_queries_the_database_would_refuse_are_refused_first(data, query, path, words):
    with pytest.raises(InvalidInput) as caught:
        filters.compile_filter(query)
    assert caught.value.field == path and words in caught.value.detail
