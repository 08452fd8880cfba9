"""``f8a-jobs demo``, and every ``$filter`` example of README.md and docs/filter.md against it.

The examples are read from the documents themselves, so one that stops matching the demo's
rows (or is no longer valid JSON) fails here, not in a reader's shell.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from f8a_jobs.storage import demo
from f8a_jobs.storage.db import build_engine
from tests.conftest import ROOT, module_server, poll

F8A_JOBS = Path(sys.executable).with_name("f8a-jobs")  # the console script, as `make run` calls it


def epv(ecosystem, name, version):
    return {"ecosystem": ecosystem, "name": name, "version": version, "force": True}


# Each example of docs/filter.md, by the title of its comment: the flows it schedules.
EXPECTED = {
    "Force run all analyses which failed": [
        epv("npm", "serve-static", "1.7.1"), epv("pypi", "requests", "2.31.0"),
    ],
    "Force analyses that started after a date": [
        epv("npm", "serve-static", "1.7.2"), epv("maven", "net.iharder:base64", "2.3.9"),
        epv("pypi", "requests", "2.31.0"),
    ],
    "Force analyses which did not finish": [
        epv("npm", "serve-static", "1.7.2"), epv("maven", "net.iharder:base64", "2.3.9"),
    ],
    "Number of analyses in the database": [{"count": 5}],
    "Unfinished analyses with no newer finished analysis of the same version": [
        epv("npm", "serve-static", "1.7.2"),
    ],
}


def filter_md_examples():
    """docs/filter.md's prepared queries: ``// title: rows`` then the argument set's JSON."""
    page = (ROOT / "docs" / "filter.md").read_text(encoding="utf-8")
    block = re.search(r"```jsonc\n(.*?)```", page, re.DOTALL).group(1)
    examples = {}
    for chunk in re.split(r"^// ", block, flags=re.MULTILINE)[1:]:
        comment, _, body = chunk.partition("\n")
        examples[comment.partition(":")[0]] = json.loads(body)
    return examples


def readme_step():
    """The tour step's curl: the path and query string it posts to, and its body."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    step = readme.split("### 5. One flow per row: `$filter`")[1].split("\n## ")[0]
    body = re.search(r"-d '(.*?)'", step, re.DOTALL).group(1)
    path = re.search(r"'http://localhost:34000/api/v1(/jobs/flow-scheduling\?[^']+)'", step).group(1)
    return path, json.loads(body)


def run_demo(url):
    env = {key: value for key, value in os.environ.items() if not key.startswith("F8A_JOBS_")}
    command = [str(F8A_JOBS), "demo"]
    return subprocess.run(command, env={**env, "F8A_JOBS_DATABASE_URL": url}, capture_output=True, text=True, timeout=60)


def contents(url):
    """Every demo table the database holds, with its rows (whatever their columns)."""
    engine = build_engine(url)
    try:
        with engine.connect() as connection:
            present = [name for name in demo.metadata.tables if inspect(connection).has_table(name)]
            return {
                name: [dict(row) for row in connection.execute(text(f"SELECT * FROM {name} ORDER BY id")).mappings()]
                for name in present
            }
    finally:
        engine.dispose()


def test_demo_loads_into_a_fresh_database_and_a_second_time_changes_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    first = run_demo(url)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"demo tables loaded into {url}\n"
    loaded = contents(url)
    assert list(loaded) == ["ecosystems", "packages", "versions", "analyses", "worker_results"]
    assert [len(rows) for rows in loaded.values()] == [3, 3, 4, 5, 3]
    second = run_demo(url)
    assert second.returncode == 0, second.stderr
    assert second.stdout == f"demo tables already in {url}\n"
    assert contents(url) == loaded


@pytest.mark.parametrize(
    ("load_first", "statements", "problem"),
    [
        (True, ["DELETE FROM worker_results WHERE id = 3"], "table 'worker_results' holds other rows"),
        (True, ["ALTER TABLE analyses ADD COLUMN note TEXT"], "table 'analyses' has other columns"),
        (True, ["DROP TABLE worker_results"], "table 'worker_results' is missing"),
        (False, ["CREATE TABLE ecosystems (id INTEGER PRIMARY KEY, name TEXT)",
                 "INSERT INTO ecosystems VALUES (7, 'golang')"], "table 'ecosystems' holds other rows"),
    ],
    ids=["other rows", "other columns", "a table missing", "someone else's table"],
)
def test_demo_refuses_tables_holding_anything_else_and_changes_nothing(tmp_path, load_first, statements, problem):
    url = f"sqlite:///{tmp_path / 'taken.db'}"
    if load_first:
        assert run_demo(url).returncode == 0
    engine = build_engine(url)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()
    before = contents(url)
    refused = run_demo(url)
    assert refused.returncode == 2, refused.stdout
    assert refused.stderr.startswith(f"f8a-jobs: {problem}") and "nothing was changed" in refused.stderr
    assert contents(url) == before


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, pytestconfig):
    """A server on a database `f8a-jobs demo` loaded, as `make run` starts one."""

    def load(engine):
        loaded = run_demo(engine.url.render_as_string(hide_password=False))
        assert loaded.returncode == 0, loaded.stderr

    tmp = tmp_path_factory.mktemp(f"demo-{request.param}")
    with module_server(request.param, tmp, pytestconfig, prepare=load) as server:
        yield server
        demo.metadata.drop_all(server.engine)


def ordered(argument_sets):
    return sorted(argument_sets, key=lambda arguments: json.dumps(arguments, sort_keys=True))


def ended_run(api, job_id):
    runs = api.get(f"/jobs/{job_id}/runs").json()["runs"]
    return next((run for run in runs if run["status"] not in ("queued", "running")), None)


def flows_of(api, job_id):
    """The argument sets of the flows the job's run emitted, once it succeeded."""
    run = poll(lambda: ended_run(api, job_id))
    assert run["status"] == "succeeded", run
    flows = api.get("/flows", params={"job_id": job_id}).json()["flows"]
    assert run["result"] == len(flows)
    return ordered(flow["arguments"] for flow in flows)


def test_every_example_of_docs_filter_md_is_checked_here():
    assert set(filter_md_examples()) == set(EXPECTED)


@pytest.mark.parametrize("title", sorted(EXPECTED))
def test_each_prepared_query_of_docs_filter_md_schedules_a_flow_per_demo_row(api, title):
    body = {"flow_name": "bayesianFlow", "flow_arguments": [filter_md_examples()[title]]}
    response = api.post("/jobs/flow-scheduling", json=body)
    assert response.status_code == 201, response.text
    job_id = response.json()["job"]["job_id"]
    expected = [{**arguments, "job_id": job_id} for arguments in EXPECTED[title]]
    assert flows_of(api, job_id) == ordered(expected)


def test_the_readme_tour_step_schedules_a_flow_per_unfinished_analysis(api):
    path, body = readme_step()
    response = api.post(path, json=body)
    assert response.status_code == 201, response.text
    assert response.json()["job"]["job_id"] == "tour-filter"
    assert flows_of(api, "tour-filter") == ordered([
        {**epv("npm", "serve-static", "1.7.2"), "job_id": "tour-filter"},
        {**epv("maven", "net.iharder:base64", "2.3.9"), "job_id": "tour-filter"},
    ])
