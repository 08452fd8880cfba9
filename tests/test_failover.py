"""Failure paths with real processes: hand-overs (graceful, kill -9, a lost lock session) and a
PostgreSQL restart. Nothing is lost, nothing runs twice, no run stays ``running``."""

import signal
import time
from datetime import datetime

from sqlalchemy import func, select, text

from f8a_jobs.storage.db import build_engine
from f8a_jobs.storage.tables import job_runs, jobs, leadership
from tests.conftest import poll, wipe

FAST = {"F8A_JOBS_WORKERS": "1", "F8A_JOBS_RUN_LEASE": "2", "F8A_JOBS_SHUTDOWN_TIMEOUT": "20"}


def leads(server):
    return server.get("/service/state", headers={"Connection": "close"}).json()["scheduler"] == "leader"


def runs_of(engine, job_id):
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(job_runs).where(job_runs.c.job_id == job_id))]


def term(engine):
    with engine.connect() as connection:
        return connection.execute(select(leadership)).one()._mapping


def two_servers(pg_url, pg_engine, server_factory):
    wipe(pg_engine)
    first = server_factory(pg_url, **FAST).start()
    poll(lambda: leads(first))
    second = server_factory(pg_url, **FAST).start()
    return first, second


def start_long_run(server, engine, job_id, seconds):
    server.post("/jobs", json={"job_id": job_id, "handler": "Sleep", "kwargs": {"seconds": seconds}, "state": "paused"})
    server.post(f"/jobs/{job_id}/run")
    return poll(lambda: [r for r in runs_of(engine, job_id) if r["status"] == "running"])[0]


def test_a_graceful_hand_over_lets_a_long_run_end_once_not_failed(pg_url, pg_engine, server_factory):
    first, second = two_servers(pg_url, pg_engine, server_factory)
    running = start_long_run(first, pg_engine, "long", 6)
    first.stop(signal.SIGTERM)  # returns once the run has ended and the process exited
    new_term = poll(lambda: term(pg_engine)["epoch"] > running["epoch"] and term(pg_engine))
    (run,) = runs_of(pg_engine, "long")
    assert run["status"] == "succeeded" and run["result"] == "slept"
    assert run["owner"] == running["owner"] and run["epoch"] == running["epoch"]
    # The standby led while the run went on (longer than the lease): it did not fail it.
    assert new_term["since"] < run["finished_at"]
    assert poll(lambda: leads(second))


def test_after_kill_9_the_next_leader_fails_the_dead_processs_run_once_with_the_reason(
    pg_url, pg_engine, server_factory
):
    first, second = two_servers(pg_url, pg_engine, server_factory)
    running = start_long_run(first, pg_engine, "stuck", 120)
    first.stop(signal.SIGKILL)
    poll(lambda: leads(second), timeout=10)
    failed = poll(lambda: [r for r in runs_of(pg_engine, "stuck") if r["status"] == "failed"], timeout=20)
    assert len(runs_of(pg_engine, "stuck")) == 1
    assert failed[0]["run_id"] == running["run_id"]
    assert f"the process running it ({running['owner']}) stopped sending heartbeats" in failed[0]["error"]


def test_a_leader_that_loses_its_lock_session_mid_run_records_it_once_and_starts_nothing_more(
    pg_url, pg_engine, server_factory
):
    first, second = two_servers(pg_url, pg_engine, server_factory)
    running = start_long_run(first, pg_engine, "cut", 5)
    with pg_engine.begin() as connection:  # the database ends the leader's lock session
        connection.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ))
    poll(lambda: term(pg_engine)["epoch"] > running["epoch"])
    done = poll(lambda: [r for r in runs_of(pg_engine, "cut") if r["status"] != "running"], timeout=30)
    assert len(runs_of(pg_engine, "cut")) == 1
    assert done[0]["status"] == "succeeded" and done[0]["owner"] == running["owner"]
    assert "stopped leading" in first.log() or "stopped leading" in second.log()


def test_a_postgresql_restart_loses_no_due_run_and_leaves_none_running(own_postgres, server_factory):
    url = own_postgres.url
    server = server_factory(url, **FAST).start()
    engine = build_engine(url)
    try:
        server.post("/jobs", json={"job_id": "tick", "handler": "Noop", "periodically": "1 second"})
        poll(lambda: succeeded(engine) >= 3)
        own_postgres.stop()
        poll(lambda: server.get("/readiness").status_code == 503)
        downtime_ends = time.monotonic() + 4  # several runs fall due while the database is away
        while time.monotonic() < downtime_ends:
            assert server.get("/liveness").status_code == 200  # the API answers meanwhile
            time.sleep(0.2)
        own_postgres.start()
        poll(lambda: server.get("/readiness").status_code == 200, timeout=30)
        before = succeeded(engine)
        poll(lambda: succeeded(engine) >= before + 3, timeout=30)
        server.put("/service/state", params={"state": "paused"})
        poll(lambda: server.get("/service/state").json()["state"] == "paused")
        # A pass that began before the pause may still queue one run: read the rows as one
        # snapshot once nothing is queued or running in it.
        ran, expected = poll(lambda: settled(engine), timeout=30)
        assert server.get("/liveness").json() == {"alive": True}
        assert ran == expected
    finally:
        engine.dispose()


def test_a_workflow_survives_a_postgresql_restart_in_its_middle(own_postgres, server_factory, tmp_path):
    server = server_factory(own_postgres.url, **FAST).start()
    b_ended = tmp_path / "b-ended"
    tasks = [
        {"name": "a", "handler": "Sleep", "kwargs": {"seconds": 0.1}},
        {"name": "b", "handler": "SleepThenMark", "kwargs": {"seconds": 2, "path": str(b_ended)}, "depends_on": ["a"]},
        {"name": "c", "handler": "Sleep", "kwargs": {"seconds": 0.1}, "depends_on": ["b"]},
    ]
    assert server.post("/jobs", json={"job_id": "flow", "tasks": tasks, "state": "paused"}).status_code == 201
    run_id = server.post("/jobs/flow/run").json()["run"]["run_id"]

    def states():
        return {t["name"]: t["state"] for t in server.get(f"/jobs/flow/runs/{run_id}").json()["run"]["tasks"]}

    poll(lambda: states().get("b") == "running")
    own_postgres.stop()  # b ends while the database is away: its outcome must not be lost
    poll(lambda: server.get("/readiness").status_code == 503)
    poll(b_ended.exists, timeout=30)  # b ended during the outage: nothing could be written
    own_postgres.start()

    def ended():
        response = server.get(f"/jobs/flow/runs/{run_id}")
        run = response.json()["run"] if response.status_code == 200 else None
        return run if run and run["status"] != "running" else None

    run = poll(ended, timeout=60)
    tries = {task["name"]: task["tries"] for task in run["tasks"]}
    assert run["status"] == "succeeded", run
    assert tries["a"] == 1 and tries["c"] == 1  # finished before, and after: each ran once
    assert tries["b"] in (1, 2)  # in flight across the outage: its try may run again


def succeeded(engine):
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(job_runs).where(job_runs.c.status == "succeeded")).scalar()


def settled(engine):
    """In one snapshot with no run queued or running: the runs accounted for (run, or recorded
    missed: a missed row may stand for several) and the slots that fell due before the job's
    next run time. None while a run is queued or running."""
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
        with connection.begin():
            unfinished = connection.execute(
                select(func.count()).select_from(job_runs).where(job_runs.c.status.in_(("queued", "running")))
            ).scalar()
            if unfinished:
                return None
            ran = connection.execute(
                select(func.count()).select_from(job_runs).where(job_runs.c.status.in_(("succeeded", "failed")))
            ).scalar()
            missed = connection.execute(
                select(func.coalesce(func.sum(job_runs.c.missed_count), 0)).where(job_runs.c.status == "missed")
            ).scalar()
            job = connection.execute(select(jobs).where(jobs.c.job_id == "tick")).one()
    start = datetime.fromisoformat(job.schedule["start"])
    return ran + missed, round((job.next_run_time - start).total_seconds())
