"""Metrics and logs of a real server: Prometheus text summed over gunicorn's workers, a
metrics token when one is set, and JSON log lines that name the job and the run."""

import json

import httpx
import pytest

from tests.conftest import poll


@pytest.fixture
def pg_server(server_factory, pg_url, pg_engine):
    from tests.conftest import wipe

    wipe(pg_engine)
    return lambda **env: server_factory(pg_url, **env)


def metrics_of(server, **headers):
    return httpx.get(server.url.removesuffix("/api/v1") + "/metrics", headers=headers, timeout=10)


def sample(text, name):
    """The value of the sample line ``name`` (with its labels, as exposed)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def test_metrics_count_runs_and_read_the_database(pg_server):
    server = pg_server(F8A_JOBS_WORKERS="2").start()
    server.post("/jobs", json={"job_id": "m", "handler": "Noop", "state": "paused"})
    server.post("/jobs", json={"job_id": "bad", "handler": "Fail", "kwargs": {"message": "x"}, "state": "paused"})
    for job_id in ("m", "m", "bad"):
        server.post(f"/jobs/{job_id}/run")
    text = poll(lambda: (r := metrics_of(server)).status_code == 200
                and sample(r.text, 'f8a_jobs_runs_total{handler="Fail",status="failed"}') == 1.0 and r.text)
    assert sample(text, 'f8a_jobs_runs_total{handler="Noop",status="succeeded"}') == 2.0
    assert sample(text, 'f8a_jobs_run_duration_seconds_count{handler="Noop"}') == 2.0
    assert sample(text, "f8a_jobs_leading") == 1.0  # one of the two workers leads
    assert sample(text, "f8a_jobs_outbox_backlog") == 0.0
    assert sample(text, 'f8a_jobs_runs_now{status="running"}') == 0.0
    assert sample(text, "f8a_jobs_leader_epoch") >= 1
    assert "# TYPE f8a_jobs_run_lateness_seconds histogram" in text


def test_a_workflow_run_that_succeeded_counts_its_duration(pg_server):
    server = pg_server(F8A_JOBS_WORKERS="1").start()
    tasks = [{"name": "a", "handler": "Sleep", "kwargs": {"seconds": 0.3}}]
    server.post("/jobs", json={"job_id": "w", "tasks": tasks, "state": "paused"})
    server.post("/jobs/w/run")
    workflow = 'f8a_jobs_runs_total{handler="workflow",status="succeeded"}'
    text = poll(lambda: sample(t := metrics_of(server).text, workflow) == 1.0 and t, timeout=20)
    assert sample(text, 'f8a_jobs_run_duration_seconds_count{handler="workflow"}') == 1.0
    assert sample(text, 'f8a_jobs_run_duration_seconds_sum{handler="workflow"}') >= 0.3


def test_a_metrics_token_guards_the_metrics_and_not_the_api(pg_server):
    server = pg_server(F8A_JOBS_METRICS_TOKEN="s3cret", F8A_JOBS_WORKERS="1").start()
    assert metrics_of(server).status_code == 401
    assert metrics_of(server, Authorization="Bearer wrong").status_code == 401
    assert metrics_of(server, Authorization="Bearer s3cret").status_code == 200
    assert server.get("/jobs").status_code == 200


def test_json_logs_name_the_job_and_the_run(pg_server):
    server = pg_server(F8A_JOBS_LOG_FORMAT="json", F8A_JOBS_WORKERS="1").start()
    server.post("/jobs", json={"job_id": "noisy", "handler": "Fail", "kwargs": {"message": "boom"}, "state": "paused"})
    run_id = server.post("/jobs/noisy/run").json()["run"]["run_id"]

    def logged():
        for line in server.log_path.read_text().splitlines():
            if line.startswith("{") and run_id in line:
                return json.loads(line)
        return None

    record = poll(logged, timeout=20)
    assert record["job_id"] == "noisy" and record["run_id"] == run_id
    assert record["levelname"] == "ERROR" and "failed" in record["message"]


def test_metrics_made_by_many_threads_at_once_are_made_once():
    """The first runs of a process end together: their threads all ask for the metrics."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = (
        "import threading\n"
        "from datetime import UTC, datetime\n"
        "from f8a_jobs.execution import metrics\n"
        "errors = []\n"
        "def use():\n"
        "    try:\n"
        "        metrics.run_started(datetime.now(UTC), datetime.now(UTC))\n"
        "    except Exception as error:\n"
        "        errors.append(error)\n"
        "threads = [threading.Thread(target=use) for _ in range(32)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "assert not errors, errors\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
