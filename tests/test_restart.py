"""A real stop and restart of the service: jobs survive, missed runs follow misfire grace time."""

import time
from datetime import timedelta

from f8a_jobs.core.clock import utcnow
from f8a_jobs.services import runs
from tests.conftest import poll


def statuses(server, job_id):
    return [
        (run["status"], run["missed_count"])
        for run in server.get(f"/jobs/{job_id}/runs").json()["runs"]
    ]


def statuses_in_db(engine, job_id):
    return [run["status"] for run in runs.list_runs(engine, job_id)[0]]


def test_jobs_survive_a_restart_and_missed_runs_follow_the_grace_time(
    db_url, engine, server_factory
):
    server = server_factory(db_url, F8A_JOBS_WORKERS="1").start()
    due = (utcnow() + timedelta(seconds=3)).isoformat()
    for body in [
        {"job_id": "within-grace", "handler": "Noop", "when": due, "misfire_grace_time": "1 hour"},
        {
            "job_id": "beyond-grace",
            "handler": "Noop",
            "when": due,
            "misfire_grace_time": "1 second",
        },
        {
            "job_id": "every-second",
            "handler": "Noop",
            "periodically": "1 second",
            "misfire_grace_time": "1 hour",
        },
        {"job_id": "paused", "handler": "Noop", "periodically": "1 second", "state": "paused"},
    ]:
        assert server.post("/jobs", json=body).status_code == 201
    poll(lambda: ("succeeded", None) in statuses(server, "every-second"))
    server.stop()
    assert statuses_in_db(engine, "within-grace") == []  # stopped before it fell due
    downtime_ends = time.monotonic() + 6  # the two one-shot jobs fall due while nothing runs
    time.sleep(max(0.0, downtime_ends - time.monotonic()))
    restarted = server_factory(db_url, F8A_JOBS_WORKERS="1").start()

    listing = restarted.get("/jobs").json()
    assert listing["total"] == 4
    assert poll(lambda: statuses(restarted, "within-grace") == [("succeeded", None)])
    assert poll(lambda: statuses(restarted, "beyond-grace") == [("missed", 1)])
    coalesced = poll(
        lambda: [
            run
            for run in restarted.get("/jobs/every-second/runs").json()["runs"]
            if run["status"] == "missed" and "coalesced" in run["error"]
        ]
    )
    assert coalesced[0]["missed_count"] >= 3
    assert statuses(restarted, "paused") == []
    assert restarted.get("/jobs/paused").json()["job"]["state"] == "paused"


def test_a_paused_service_stays_paused_across_a_restart(db_url, engine, server_factory):
    server = server_factory(db_url, F8A_JOBS_WORKERS="1").start()
    server.put("/service/state", params={"state": "paused"})
    server.stop()
    restarted = server_factory(db_url, F8A_JOBS_WORKERS="1").start()
    assert poll(
        lambda: restarted.get("/service/state").json() == {"state": "paused", "scheduler": "leader"} | {"leader": restarted.get("/service/state").json()["leader"]}
    )
    restarted.post("/jobs", json={"job_id": "held", "handler": "Noop"})
    restarted.post("/jobs/held/run")
    poll(lambda: statuses(restarted, "held") == [("succeeded", None)])
    assert restarted.get("/jobs/held").json()["job"]["last_run"] is None


def test_the_paused_setting_starts_the_service_paused(db_url, engine, server_factory):
    server = server_factory(db_url, F8A_JOBS_WORKERS="1", JOB_SERVICE_PAUSED="true").start()
    assert server.get("/service/state").json()["state"] == "paused"


def test_default_jobs_are_loaded_at_start_without_duplicates(
    db_url, engine, server_factory, tmp_path
):
    defaults = tmp_path / "defaults"
    defaults.mkdir()
    (defaults / "nightly.yaml").write_text(
        "job_id: nightly\nhandler: Noop\nperiodically: 1 day\nkwargs: {}\n"
    )
    first = server_factory(db_url, defaults, F8A_JOBS_WORKERS="1").start()
    assert first.get("/jobs").json()["total"] == 1
    first.stop()
    second = server_factory(db_url, defaults, F8A_JOBS_WORKERS="1").start()
    assert [job["job_id"] for job in second.get("/jobs").json()["jobs"]] == ["nightly"]
    assert [run["status"] for run in second.get("/jobs/nightly/runs").json()["runs"]] == [
        "succeeded"
    ]
