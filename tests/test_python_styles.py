"""The reference systems' own Python, run against a real server on PostgreSQL: Datatailr's
scripts (``examples/datatailr``, unchanged but for their import lines) and its dev run,
DoJobber's party (``examples/dojobber_party.py``) run twice, vdk's ``JOBS_RUN_ORDER``, and the
errors a user of each meets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from examples import dojobber_party
from f8a_jobs.client import ApiError, Client
from f8a_jobs.client.datatailr import DAG, Schedule, Task
from f8a_jobs.client.devrun import DevRunFailed
from f8a_jobs.client.vdk import MetaJobFailed, MetaJobInput
from tests.conftest import ROOT, module_server, wipe

TOKEN = "styles-test-token"
DATATAILR = ROOT / "examples" / "datatailr"
MODULES = "tests.handlers,my_package,test_entrypoint,examples.dojobber_party"
PYTHONPATH = f"{ROOT}{os.pathsep}{DATATAILR}"


@pytest.fixture(scope="module")
def server(tmp_path_factory, pytestconfig):
    tmp = tmp_path_factory.mktemp("styles")
    env = {"F8A_JOBS_API_TOKENS": TOKEN, "F8A_JOBS_HANDLER_MODULES": MODULES, "PYTHONPATH": PYTHONPATH}
    with module_server("postgresql", tmp, pytestconfig, **env) as server:
        yield server


@pytest.fixture
def client(server):
    wipe(server.engine)
    with Client(server.url, TOKEN) as client:
        yield client


def script(name, server, home=None):
    """Run one of Datatailr's scripts as its user would: ``python <script>``."""
    env = {**os.environ, "F8A_JOBS_URL": server.url, "F8A_JOBS_TOKEN": TOKEN, "PYTHONPATH": PYTHONPATH}
    if home is not None:
        env |= {"HOME": str(home), "PYTHONPATH": f"{PYTHONPATH}{os.pathsep}{home / 'example'}"}
    done = subprocess.run([sys.executable, name], cwd=DATATAILR, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def ran(client, job_id):
    run = client.wait(client.run_now(job_id), timeout=60, interval=0.1)
    return run, {task["name"]: task for task in run["tasks"]}


def test_the_decorators_example_passes_each_result_on_by_function_name(server, client):
    script("decorators.py", server)
    job = client.get_job("Test batch with decorators")
    assert job["manual"] and job["state"] == "running" and job["next_run_time"] is None
    assert client.next_runs(job["job_id"]) == []  # an empty Schedule: it runs when started
    tasks = {task["name"]: task for task in job["tasks"]}
    assert tasks["baz task"]["depends_on"] == ["foo task", "bar task"]
    assert tasks["bar task"]["kwargs"]["foo"] == {"$result": "foo task"}
    assert tasks["foo task"]["metadata"] == {"Image": "f8a-jobs-examples", "Description": "This is for testing"}
    run, done = ran(client, "Test batch with decorators")
    assert run["status"] == "succeeded", run
    assert done["bar task"]["result"] == "This is the return value of function bar"
    assert done["baz task"]["result"] == "This is the return value of function baz"
    logged = [r["message"] for r in client.logs(job["job_id"], run["run_id"], task="baz task")]
    assert any(line.startswith("I am running with a custom rundate: 20") for line in logged), logged
    assert "foo='This is the return value of function foo'" in logged  # what it printed
    revision = client.get_job(job["job_id"])["revision"]
    script("decorators.py", server)  # saved again: nothing changes, no second job
    assert client.get_job(job["job_id"])["revision"] == revision
    assert [j["job_id"] for j in client.jobs()] == ["Test batch with decorators"]


def test_the_test_batch_example_runs_at_18_utc_and_its_tasks_know_their_names(server, client):
    script("test_batch.py", server)
    job = client.get_job("Test Batch")
    assert job["calendar"]["at_hours"] == [18] and job["state"] == "running"
    assert all(slot["utc"][11:16] == "18:00" for slot in client.next_runs("Test Batch", 2))
    run, done = ran(client, "Test Batch")
    assert run["status"] == "succeeded", run
    assert done["Task 1"]["result"] == "Task 1" and done["Task 2"]["result"] == "Task 2"
    assert done["Task 2"]["started_at"] >= done["Task 1"]["finished_at"]


def test_tasks_per_country_then_the_same_job_as_a_parallel_task(server, client):
    script("countries.py", server)
    run, done = ran(client, "My Batch Job")
    assert run["status"] == "succeeded", run
    assert done["Task #1 - DE"]["result"] == {"country": "DE", "value": 20}
    assert done["Final Task"]["result"] == ["DE", "FR", "GB", "IT", "NL"]
    assert len(done) == 6
    script("countries_parallel.py", server)  # the same Name: the job changes to one ParallelTask
    job = client.get_job("My Batch Job")
    assert [task["name"] for task in job["tasks"]] == ["Parallel Task for countries", "Final Task"]
    assert job["tasks"][0]["metadata"]["CPU"] == 1000 and job["tasks"][0]["metadata"]["CountForPrewarming"]
    run, done = ran(client, "My Batch Job")
    assert run["status"] == "succeeded", run
    parts = done["Parallel Task for countries"]["result"]
    assert [part["country"] for part in parts] == ["FR", "DE", "GB", "IT", "NL"]
    logged = [r["message"] for r in client.logs("My Batch Job", run["run_id"], task="Parallel Task for countries", part=3)]
    assert logged == ["Task #3 - IT: part 3 of 5, calculating for IT"]


def test_the_dev_run_example_runs_in_this_process_without_a_service(tmp_path):
    shutil.copytree(DATATAILR / "example", tmp_path / "example")
    done = subprocess.run(
        [sys.executable, "-c", open(DATATAILR / "devrun.py").read() + "\nprint(DAG.__module__)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "HOME": str(tmp_path), "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path / 'example'}",
             "F8A_JOBS_URL": "http://127.0.0.1:9"},  # nothing listens: no service is asked
    )
    assert done.returncode == 0, done.stderr


def test_batch_calls_in_a_dag_wire_results_retries_and_failures_in_a_dev_run(tmp_path):
    sys.path.insert(0, str(DATATAILR))
    try:
        from my_package.my_file import bar, baz, foo
    finally:
        sys.path.remove(str(DATATAILR))
    with DAG(Name="local", DevRun=True, WorkDir=str(tmp_path)) as dag:
        f = foo()
        baz(f, bar(f))
    assert dag.result.results["baz"] == "This is the return value of function baz"
    marks = tmp_path / "flaky"
    with pytest.raises(DevRunFailed) as failed, DAG(Name="flaky", DevRun=True, WorkDir=str(tmp_path)) as dag:
        first = Task(Name="flaky", Entrypoint="tests.test_python_styles.flaky", ConfigurationJson={"marks": str(marks)}, Retries=1)
        never = Task(Name="never", Entrypoint="tests.test_python_styles.flaky", ConfigurationJson={"marks": str(marks), "fail": True})
        then = Task(Name="then", Entrypoint="tests.handlers.added", dag=dag)
        first >> then
        never >> then
    result = failed.value.result
    assert result.states == {"flaky": "succeeded", "never": "failed", "then": "upstream_failed"}
    assert result.tries["flaky"] == 2 and "always fails" in str(failed.value)


def flaky(job_config):
    """Fails its first try (or every try, with ``fail``)."""
    with open(job_config["marks"], "a") as marks:
        marks.write("x")
    if job_config.get("fail") or len(open(job_config["marks"]).read()) == 1:
        raise RuntimeError("always fails" if job_config.get("fail") else "first try fails")
    return "ok"


def test_batch_calls_saved_to_the_service_run_there(client):
    sys.path.insert(0, str(DATATAILR))
    try:
        from my_package.my_file import bar, baz, foo
    finally:
        sys.path.remove(str(DATATAILR))
    with DAG(Name="batch calls", Schedule=Schedule(), Priority="high", Labels="nightly, finance",
             AlertEmail="team@example.org", AlertOnlyFailures=True, FailAfter="1 hour", client=client) as dag:
        f = foo()
        baz(f, bar(f))
    saved = dag.save()
    assert saved["priority"] == "high" and saved["labels"] == ["nightly", "finance"]
    assert saved["alerts"][0]["email"] == "team@example.org" and saved["alerts"][0]["on"] == ["failure"]
    assert saved["timeout"] == 3600
    run = client.wait(dag.run(), timeout=60, interval=0.1)
    assert run["status"] == "succeeded", run
    assert {t["name"]: t["result"] for t in run["tasks"]}["baz"] == "This is the return value of function baz"


def test_unknown_fields_and_entry_points_are_refused_naming_them(client):
    with pytest.raises(TypeError, match="Colour"), DAG(Name="x", client=client) as dag:
        Task(Name="t", Entrypoint="my_package.my_file.foo", dag=dag, Colour="red")
    with pytest.raises(TypeError, match="at_seconds"):
        Schedule(at_seconds=[0])
    with DAG(Name="bad", client=client) as dag:
        Task(Name="t", Entrypoint="os.path.join", dag=dag)
    with pytest.raises(ApiError) as refused:
        dag.save()
    assert refused.value.status == 400 and refused.value.field == "tasks[0].entrypoint"
    assert "F8A_JOBS_HANDLER_MODULES" in refused.value.message
    with DAG(Name="bad", client=client) as dag:
        Task(Name="t", Entrypoint="my_package.my_file.nothing", dag=dag)
    with pytest.raises(ApiError, match="no such function"):
        dag.save()
    with pytest.raises(ApiError) as missing:
        client.create_job({"job_id": "fn", "entrypoint": "tests.handlers.scaled", "kwargs": {"valeu": 1}})
    assert missing.value.status == 400 and "missing a required argument: 'value'" in missing.value.message
    assert list(client.jobs()) == []


def test_the_dojobber_party_runs_then_only_checks(client, tmp_path):
    house = tmp_path / "house"
    house.mkdir()
    job = dojobber_party.submit(client, str(house))
    assert job["manual"]
    tasks = {task["name"]: task for task in job["tasks"]}
    assert "handler" not in tasks["InviteFriends"]  # a DummyJob groups
    assert tasks["Invite Lawyer Cat"]["kwargs"]["class_attributes"]["EMAIL"] == "lawyercat@example.com"
    run, done = ran(client, "party")
    assert run["status"] == "succeeded", run
    assert {done[name]["state"] for name in done if name != "InviteFriends"} == {"succeeded"}
    assert done["PopcornBowl"]["tries"] == 2  # the dishwasher needed a second cycle
    assert (house / "watching").read_text() == "Zardoz with Lawyer Cat, Wendell Bagg\n"
    assert done["WatchMovie"]["result"]["global_storage"]["guests"] == ["Lawyer Cat", "Wendell Bagg"]
    assert (house / "cleanups").read_text().split() == ["Popcorn", "PopcornBowl"]  # last first
    again, done = ran(client, "party")
    assert again["status"] == "succeeded", again
    assert {done[name]["state"] for name in done if name != "InviteFriends"} == {"satisfied"}
    assert (house / "cleanups").read_text().split() == ["Popcorn", "PopcornBowl"]  # nothing ran


JOBS_RUN_ORDER = [
    {"job_name": "job1", "team_name": "team-awesome", "fail_meta_job_on_error": True, "arguments": {}, "depends_on": []},
    {"job_name": "job2", "team_name": "team-awesome", "fail_meta_job_on_error": True, "arguments": {}, "depends_on": ["job1"]},
    {"job_name": "job3", "team_name": "team-awesome", "fail_meta_job_on_error": True, "arguments": {}, "depends_on": ["job1"]},
    {"job_name": "job4", "team_name": "team-awesome", "fail_meta_job_on_error": True, "arguments": {}, "depends_on": ["job1"]},
    {"job_name": "job5", "team_name": "team-awesome", "fail_meta_job_on_error": True, "arguments": {}, "depends_on": ["job3"]},
    {"job_name": "job6", "team_name": "team-awesome", "fail_meta_job_on_error": True, "arguments": {}, "depends_on": ["job3"]},
]


def test_vdk_meta_jobs_run_in_order_and_fail_as_they_say(client):
    for n in range(1, 7):
        client.create_job({"job_id": f"job{n}", "handler": "Noop", "state": "paused"})
    run = MetaJobInput(client).run_meta_job(JOBS_RUN_ORDER)
    assert run["status"] == "succeeded"
    tasks = {task["name"]: task for task in run["tasks"]}
    assert tasks["job5"]["started_at"] >= tasks["job3"]["finished_at"] >= tasks["job1"]["finished_at"]
    client.update_job("job4", {"handler": "Fail", "kwargs": {"message": "job4 broke"}})
    with pytest.raises(MetaJobFailed) as failed:
        MetaJobInput(client).run_meta_job(JOBS_RUN_ORDER)
    assert failed.value.run["status"] == "failed" and "job4" in str(failed.value)
    lenient = [{**job, "fail_meta_job_on_error": job["job_name"] != "job4"} for job in JOBS_RUN_ORDER]
    assert MetaJobInput(client).run_meta_job(lenient)["status"] == "succeeded"
