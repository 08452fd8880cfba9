"""Two ``f8a-jobs serve`` processes (two gunicorn workers each) on one PostgreSQL."""

import os
import signal
import time

from sqlalchemy import func, select

from f8a_jobs.storage.tables import job_runs, leadership
from tests.conftest import poll, wipe


def run_counts(engine):
    """Runs per (job, scheduled time): exactly-once means every count is 1."""
    query = (
        select(job_runs.c.job_id, job_runs.c.scheduled_for, func.count())
        .group_by(job_runs.c.job_id, job_runs.c.scheduled_for)
        .where(job_runs.c.status != "missed")
    )
    with engine.connect() as connection:
        return connection.execute(query).all()


def test_each_due_run_fires_once_and_a_standby_takes_over(pg_url, pg_engine, server_factory):
    wipe(pg_engine)
    first = server_factory(pg_url, F8A_JOBS_WORKERS="2").start()
    second = server_factory(pg_url, F8A_JOBS_WORKERS="2").start()

    for number in range(300):
        assert (
            second.post(
                "/jobs", json={"job_id": f"once-{number:03}", "handler": "Noop"}
            ).status_code
            == 201
        )
    for number in range(5):
        second.post(
            "/jobs",
            json={"job_id": f"tick-{number}", "handler": "Noop", "periodically": "1 second"},
        )

    def one_shot_runs():
        return [row for row in run_counts(pg_engine) if row.job_id.startswith("once-")]

    poll(lambda: len(one_shot_runs()) == 300, timeout=30)
    poll(lambda: len([r for r in run_counts(pg_engine) if r.job_id == "tick-0"]) >= 3, timeout=30)
    assert {row[2] for row in run_counts(pg_engine)} == {1}, "a due run fired more than once"

    # Find the process group that fires, and kill it without warning.
    holder = poll(lambda: next((s for s in (first, second) if "leader" in workers_roles(s)), None))
    standby = second if holder is first else first
    holder.stop(signal.SIGKILL)
    started = time.monotonic()
    poll(lambda: "leader" in workers_roles(standby), timeout=10)
    takeover = time.monotonic() - started
    assert takeover < 10

    standby.post("/jobs", json={"job_id": "after-failover", "handler": "Noop"})
    poll(
        lambda: (
            [r["status"] for r in standby.get("/jobs/after-failover/runs").json()["runs"]]
            == ["succeeded"]
        )
    )


def test_each_server_says_whether_it_leads_whichever_worker_answers(pg_url, pg_engine, server_factory):
    """``scheduler`` in ``GET /service/state`` speaks for the server (any of its processes), not
    for the worker that serves the request; after the leading worker is killed, the servers
    agree again on who leads."""
    wipe(pg_engine)
    servers = [server_factory(pg_url, F8A_JOBS_WORKERS="2").start() for _ in range(2)]

    def agreed():
        roles = [workers_roles(server, asks=40) for server in servers]
        return roles if sorted(map(sorted, roles)) == [["leader"], ["standby"]] else None

    poll(agreed, timeout=30)
    holder = poll(lambda: term_holder(pg_engine))
    leading_pid = int(holder.split(":")[1])
    os.kill(leading_pid, signal.SIGKILL)  # one worker, not its server: gunicorn starts another
    poll(lambda: term_holder(pg_engine) not in (None, holder), timeout=30)
    poll(agreed, timeout=30)


def term_holder(engine):
    with engine.connect() as connection:
        return connection.execute(select(leadership.c.holder)).scalar()


def workers_roles(server, asks=12):
    """The roles the server's workers report (each new connection lands on one of them)."""
    return {
        server.get("/service/state", headers={"Connection": "close"}).json()["scheduler"]
        for _ in range(asks)
    }


def test_processes_starting_at_once_migrate_and_load_default_jobs_once(pytestconfig, tmp_path):
    """Three ``initjobs`` at once on an empty database: one schema, one copy of each job."""
    import os
    import subprocess
    import sys
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from f8a_jobs.core.settings import bundled_path
    from f8a_jobs.storage.db import build_engine
    from tests.conftest import ROOT

    admin = pytestconfig.f8a_admin
    name = f"f8a_jobs_race_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pytestconfig.f8a_pg_url).set(database=name).render_as_string(hide_password=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "F8A_JOBS_DATABASE_URL": url}
    try:
        processes = [
            subprocess.Popen([sys.executable, "-m", "f8a_jobs.cli", "initjobs", "--strict"], env=env,
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(3)
        ]
        outputs = [process.communicate(timeout=120) for process in processes]
        assert [process.returncode for process in processes] == [0, 0, 0], outputs
        created = sorted(int(out.split("default jobs: ")[1].split()[0]) for out, _ in outputs)
        shipped = len(list(bundled_path("default_jobs").glob("*.yaml")))
        assert created == [0, 0, shipped]
        engine = build_engine(url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM jobs")).scalar() == shipped
        engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
