"""``POST /jobs/apply`` over HTTP on a real server: a list of new jobs in one request, the same
list again (nothing to change), and the list with every job changed; each one transaction."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.ours import migrated
from f8a_jobs.core.clock import utcnow
from tests.conftest import Server

JOBS = 20_000


def job_list(count: int, periodically: str) -> list[dict[str, Any]]:
    """``count`` jobs as a folder of job files would give them: a handler, a schedule starting
    in a year (none fires meanwhile), a label."""
    later = (utcnow() + timedelta(days=365)).replace(microsecond=0).isoformat()
    return [
        {
            "job_id": f"apply-{n:06}",
            "handler": "Noop",
            "periodically": periodically,
            "when": later,
            "labels": ["bench"],
        }
        for n in range(count)
    ]


def measure(url: str, workdir: Path, count: int = JOBS) -> dict[str, float]:
    """Jobs a second for each of the three applies, and the answer's counts checked."""
    migrated(url).dispose()
    (workdir / "defaults").mkdir(exist_ok=True)
    server = Server(url, workdir / "defaults", workdir / "server.log").start()
    try:
        jobs = job_list(count, "1 day")
        figures = {"create_per_s": _rate(server, jobs, "created")}
        figures["unchanged_per_s"] = _rate(server, jobs, "unchanged")
        changed = [{**job, "periodically": "12 hours"} for job in jobs]
        figures["change_per_s"] = _rate(server, changed, "changed")
    finally:
        server.stop()
    return figures


def _rate(server: Server, jobs: list[dict[str, Any]], expected: str) -> float:
    started = time.perf_counter()
    response = server.client.post("/jobs/apply", json={"jobs": jobs}, timeout=600)
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or len(response.json()[expected]) != len(jobs):
        raise AssertionError(f"apply: {response.status_code} {response.text[:500]}")
    return len(jobs) / elapsed
