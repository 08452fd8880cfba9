"""Workflows through a real service over HTTP: the vdk example, the graph, a dry run, and a
``kill -9`` of the service in the middle of a run."""

import signal
from datetime import datetime

import pytest

from tests.conftest import poll
from tests.test_workflows import VDK

ENDED = ("succeeded", "failed", "cancelled")


@pytest.fixture
def server(server_factory, pytestconfig):
    from f8a_jobs.storage.db import build_engine
    from f8a_jobs.storage.migrate import migrate
    from tests.conftest import wipe

    url = str(pytestconfig.f8a_pg_url)
    engine = build_engine(url)
    migrate(engine)
    wipe(engine)
    engine.dispose()
    return server_factory(url, F8A_JOBS_RUN_LEASE="2", F8A_JOBS_WORKERS="1")


def run_of(server, job_id, run_id):
    return server.get(f"/jobs/{job_id}/runs/{run_id}").json()["run"]


def ended(server, job_id, run_id):
    run = run_of(server, job_id, run_id)
    return run if run["status"] in ENDED else None


def moment(text):
    return datetime.fromisoformat(text)


def test_the_vdk_example_over_http(server):
    server.start()
    for n in range(1, 7):
        created = server.post("/jobs", json={"job_id": f"job{n}", "handler": "Sleep", "kwargs": {"seconds": 0.3}, "state": "paused"})
        assert created.status_code == 201, created.text
    created = server.post("/jobs", json={"job_id": "meta", "tasks": VDK, "max_concurrent": 2, "state": "paused"})
    assert created.status_code == 201, created.text
    assert [task["job_name"] if "job_name" in task else task["job"] for task in created.json()["job"]["tasks"]][0] == "job1"
    run_id = server.post("/jobs/meta/run").json()["run"]["run_id"]
    run = poll(lambda: ended(server, "meta", run_id), timeout=30)
    assert run["status"] == "succeeded", run
    tasks = {task["name"]: task for task in run["tasks"]}
    start = {name: moment(task["started_at"]) for name, task in tasks.items()}
    end = {name: moment(task["finished_at"]) for name, task in tasks.items()}
    assert end["job1"] <= min(start["job2"], start["job3"], start["job4"])
    assert end["job3"] <= min(start["job5"], start["job6"])
    for name in tasks:  # never more than two at once: count those running when each starts
        running = [other for other in tasks if start[other] <= start[name] < end[other]]
        assert len(running) <= 2, (name, running)
    graph = server.get("/jobs/meta/graph", params={"format": "mermaid"})
    assert graph.status_code == 200 and graph.text.startswith("flowchart TD")
    assert '["job5 (succeeded)"]' in graph.text and graph.text.count("-->") == 5
    fenced = server.get("/jobs/meta/graph", params={"format": "markdown"}).text
    assert fenced == f"```mermaid\n{graph.text}```\n"  # pasted into Markdown, it is drawn
    assert "digraph" in server.get("/jobs/meta/graph", params={"format": "dot"}).text
    shown = server.get("/jobs/meta/graph").json()
    assert shown["run_id"] == run_id and shown["tasks"][4] == {"name": "job5", "depends_on": ["job3"], "state": "succeeded"}
    assert server.get(f"/jobs/meta/runs/{'0' * 32}").status_code == 404
    assert server.post(f"/jobs/meta/runs/{run_id}/retry").status_code == 409
    assert server.delete("/jobs/job3").status_code == 409


def test_dry_run_reports_which_tasks_would_run(server):
    server.start()
    tasks = [
        {"name": "first", "handler": "Idempotent", "kwargs": {"mark": "one"}},
        {"name": "second", "handler": "Idempotent", "kwargs": {"mark": "two"}, "depends_on": ["first"]},
        {"name": "other", "handler": "Noop"},
    ]
    assert server.post("/jobs", json={"job_id": "idem", "tasks": tasks, "state": "paused"}).status_code == 201
    report = server.post("/jobs/idem/run", params={"dry_run": "true"}).json()["dry_run"]
    assert [(task["name"], task["would"]) for task in report["tasks"]] == [
        ("first", "would_run"), ("second", "not_checked"), ("other", "would_run"),
    ]
    assert server.get("/jobs/idem/runs").json()["total"] == 0  # nothing stored
    assert server.post("/jobs/job0/run", params={"dry_run": "true"}).status_code == 404


def test_a_workflow_survives_kill_9_and_finished_tasks_do_not_run_again(server, server_factory):
    server.start()
    tasks = [
        {"name": "a", "handler": "Sleep", "kwargs": {"seconds": 0.1}},
        {"name": "b", "handler": "Sleep", "kwargs": {"seconds": 3}, "depends_on": ["a"]},
        {"name": "c", "handler": "Sleep", "kwargs": {"seconds": 0.1}, "depends_on": ["b"]},
    ]
    assert server.post("/jobs", json={"job_id": "chain", "tasks": tasks, "state": "paused"}).status_code == 201
    run_id = server.post("/jobs/chain/run").json()["run"]["run_id"]
    poll(lambda: {t["name"]: t["state"] for t in run_of(server, "chain", run_id)["tasks"]}.get("b") == "running")
    server.stop(signal.SIGKILL)
    again = server_factory(server.database_url, F8A_JOBS_RUN_LEASE="2", F8A_JOBS_WORKERS="1").start()
    run = poll(lambda: ended(again, "chain", run_id), timeout=60)
    tasks = {task["name"]: task for task in run["tasks"]}
    assert run["status"] == "succeeded", run
    assert (tasks["a"]["tries"], tasks["b"]["tries"], tasks["c"]["tries"]) == (1, 2, 1)
    assert tasks["a"]["result"] == "slept" and tasks["c"]["state"] == "succeeded"


def test_for_each_over_a_filter_runs_one_part_per_row(server, pytestconfig):
    from f8a_jobs.storage import demo
    from f8a_jobs.storage.db import build_engine

    engine = build_engine(str(pytestconfig.f8a_pg_url))
    demo.load(engine)
    try:
        server.start()
        tasks = [
            {"name": "per-package", "handler": "Square",
             "for_each": {"$filter": {"table": "packages", "select": ["packages.id as value"]}}},
            {"name": "total", "handler": "Total", "depends_on": ["per-package"],
             "kwargs": {"values": {"$result": "per-package"}}},
        ]
        body = {"job_id": "per-package", "tasks": tasks, "state": "paused"}
        assert server.post("/jobs", json=body).status_code == 201
        run_id = server.post("/jobs/per-package/run").json()["run"]["run_id"]
        run = poll(lambda: ended(server, "per-package", run_id), timeout=30)
        parts = {task["name"]: task for task in run["tasks"]}["per-package"]["parts"]
        assert run["status"] == "succeeded", run
        assert sorted(part["result"] for part in parts) == [1, 4, 9]  # packages 1, 2, 3 squared
        assert {task["name"]: task for task in run["tasks"]}["total"]["result"] == 14
    finally:
        demo.metadata.drop_all(engine)
        engine.dispose()
