"""Workflow benchmarks on a real server process: W1 (a root, N parts fanned out, a final task
taking their N results through ``$result``) and W2 (a chain of 200 tasks), every task
transition persisted in PostgreSQL, timed from ``POST /jobs/{id}/run`` to the run's recorded
success. The server's peak RSS after a 10,000-part W1 is read from ``/proc``."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
from sqlalchemy import Engine, select

from bench.ours import migrated
from f8a_jobs.storage.tables import job_runs
from tests.conftest import Server

THREADS = 20


def fanout_job(width: int) -> dict:
    return {
        "job_id": f"w1-{width}",
        "state": "paused",
        "max_concurrent": THREADS,
        "tasks": [
            {"name": "root", "handler": "Noop"},
            {
                "name": "fan",
                "handler": "Echo",
                "depends_on": ["root"],
                "for_each": [{"value": n} for n in range(width)],
            },
            {
                "name": "final",
                "handler": "Count",
                "depends_on": ["fan"],
                "kwargs": {"values": {"$result": "fan"}},
            },
        ],
    }


def chain_job(length: int) -> dict:
    tasks = [{"name": "t0", "handler": "Noop"}]
    tasks += [
        {"name": f"t{n}", "handler": "Noop", "depends_on": [f"t{n - 1}"]} for n in range(1, length)
    ]
    return {"job_id": f"w2-{length}", "state": "paused", "tasks": tasks}


def measure(url: str, workdir: Path, fanout: int, chain: int, big_fanout: int) -> dict[str, float]:
    """W1 and W2 seconds on one server, then its peak RSS after a ``big_fanout`` W1."""
    engine = migrated(url)
    (workdir / "defaults").mkdir(exist_ok=True)
    server = Server(
        url,
        workdir / "defaults",
        workdir / "server.log",
        F8A_JOBS_EXECUTOR_THREADS=str(THREADS),
        F8A_JOBS_WORKERS="1",
        F8A_JOBS_LOG_LEVEL="WARNING",
    ).start()
    try:
        figures = {
            "w1_s": seconds_to_success(server, engine, fanout_job(fanout)),
            "w2_s": seconds_to_success(server, engine, chain_job(chain)),
        }
        big = seconds_to_success(server, engine, fanout_job(big_fanout))
        figures.update(big_w1_s=big, **peak_rss_mb(server))
        return figures
    finally:
        server.stop()
        engine.dispose()


def seconds_to_success(server: Server, engine: Engine, job: dict) -> float:
    created = server.post("/jobs", json=job)
    assert created.status_code == 201, created.text
    started = time.perf_counter()
    response = server.post(f"/jobs/{job['job_id']}/run")
    assert response.status_code == 202, response.text
    status = _wait(engine, response.json()["run"]["run_id"])
    elapsed = time.perf_counter() - started
    assert status == "succeeded", status
    return elapsed


def peak_rss_mb(server: Server) -> dict[str, float]:
    """The highest peak RSS among the service's processes (the worker that leads and runs the
    workflows), and the sum of all their peaks (gunicorn's master included)."""
    assert server.process is not None
    root = psutil.Process(server.process.pid)
    peaks = [_peak_kb(process.pid) / 1024 for process in [root, *root.children(recursive=True)]]
    return {"rss_peak_mb": max(peaks), "rss_peak_total_mb": sum(peaks)}


def _peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


def _wait(engine: Engine, run_id: str, timeout: float = 600.0) -> str:
    """Poll the run's status row: cheaper than GET, which returns every part. Every 2 ms at
    first, then every 0.5 % of the time so far: the figure is as exact, and a long run is
    not slowed by the bench's own queries (on 2 cores they took a tenth of the machine)."""
    started = time.monotonic()
    query = select(job_runs.c.status).where(job_runs.c.run_id == run_id)
    with engine.connect() as connection:
        while (elapsed := time.monotonic() - started) < timeout:
            status = connection.execute(query).scalar()
            connection.rollback()
            if status in ("succeeded", "failed", "cancelled"):
                return str(status)
            time.sleep(max(0.002, elapsed / 200))
    raise TimeoutError(f"run {run_id} did not end within {timeout} s")
