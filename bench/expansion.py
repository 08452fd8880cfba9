"""Expanding a ``$filter`` into the outbox: f8a-jobs beside the original approach.

Each side runs in a child process of its own, so its peak RSS is its own. The original
approach: json2sql's SQL, ``fetchall()``, then one dispatch call per row (here: one outbox
INSERT and commit per row, as it was measured).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from f8a_jobs.storage import demo
from f8a_jobs.storage.db import build_engine
from f8a_jobs.storage.migrate import migrate

QUERY = {
    "table": "analyses",
    "joins": [
        {"table": "versions", "on": {"analyses.version_id": "versions.id"}},
        {"table": "packages", "on": {"versions.package_id": "packages.id"}},
        {"table": "ecosystems", "on": {"ecosystems.id": "packages.ecosystem_id"}},
    ],
    "select": [
        "packages.name as name",
        "ecosystems.name as ecosystem",
        "versions.identifier as version",
    ],
    "where": {"analyses.finished_at": None},
}


def prepare(url: str, rows: int) -> None:
    """``rows`` unfinished analyses, each of its own version, over 1,000 packages."""
    engine = build_engine(url)
    migrate(engine)
    demo.metadata.create_all(engine)  # the tables only: the rows are made here
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO ecosystems SELECT g, 'eco' || g FROM generate_series(1, 3) g")
        )
        connection.execute(
            text(
                "INSERT INTO packages SELECT g, 1 + g % 3, 'package-' || g FROM generate_series(1, 1000) g"
            )
        )
        connection.execute(
            text(
                "INSERT INTO versions SELECT g, 1 + g % 1000, '1.0.' || g FROM generate_series(1, :rows) g"
            ),
            {"rows": rows},
        )
        connection.execute(
            text("INSERT INTO analyses SELECT g, g, now(), NULL FROM generate_series(1, :rows) g"),
            {"rows": rows},
        )
        connection.execute(
            text(
                "CREATE TABLE baseline_outbox (id bigserial PRIMARY KEY, flow_name text, arguments jsonb)"
            )
        )
        connection.execute(text("ANALYZE"))
    engine.dispose()


def measure(side: str, url: str, limit: int | None = None) -> dict[str, float]:
    """Run one side in a child process; its row count, seconds and peak RSS."""
    command = [sys.executable, "-m", "bench.expansion", side, url, str(limit or 0)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def run_ours(url: str, limit: int) -> int:
    """The real path: a claimed run of a FlowScheduling job streams its flows into the outbox
    (spilled into its own transaction) and records itself with them."""
    from f8a_jobs.core.clock import utcnow
    from f8a_jobs.core.settings import Settings, use_settings
    from f8a_jobs.core.states import JobState
    from f8a_jobs.execution.executors.base import execute_run
    from f8a_jobs.services import runs
    from f8a_jobs.services.jobs import HandlerCall, JobSpec, create_job
    from f8a_jobs.storage.fencing import begin_term

    use_settings(Settings(database_url=url))
    engine = build_engine(url)
    query = {**QUERY, "limit": limit} if limit else QUERY
    kwargs = {"flow_name": "bayesianFlow", "flow_arguments": [{"$filter": query, "force": True}]}
    spec = {"version": 1, "type": "date", "run_date": utcnow().isoformat()}
    job = JobSpec(
        f"expand-{limit}", HandlerCall("FlowScheduling", kwargs), spec, JobState.PAUSED, 3600
    )
    create_job(engine, job)  # as stored; validating it is not what is measured
    with engine.begin() as connection:
        epoch = begin_term(connection, "bench", utcnow())
        runs.queue_manual(connection, job.job_id, utcnow(), "user:bench")
        (run,) = runs.claim(connection, epoch, "bench", 1, utcnow())
    outcome = execute_run(run, engine, 65536)
    if outcome is not None:  # not spilled: a small result, recorded here
        with engine.begin() as connection:
            runs.finish(connection, [outcome])
        return len(outcome.flows)
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM flow_outbox WHERE run_id = :r"), {"r": run.run_id}).scalar_one())


def run_original(url: str, limit: int) -> int:
    import psycopg2
    from json2sql import select2sql
    from sqlalchemy.engine import make_url

    sql = select2sql(**json.loads(json.dumps(QUERY))) + (f" LIMIT {limit}" if limit else "")
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        columns = [column.name for column in cursor.description]
        rows = cursor.fetchall()
        for row in rows:  # one dispatch call per row
            arguments = {**dict(zip(columns, row, strict=True)), "force": True}
            cursor.execute(
                "INSERT INTO baseline_outbox (flow_name, arguments) VALUES (%s, %s)",
                ("bayesianFlow", json.dumps(arguments)),
            )
            connection.commit()
    return len(rows)


def peak_rss_mb() -> float:
    """This process's peak RSS. Not ru_maxrss: it survives exec, so a child started by a big
    parent would report the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _child(side: str, url: str, limit: int) -> None:
    started = time.perf_counter()
    count = run_ours(url, limit) if side == "ours" else run_original(url, limit)
    elapsed = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    print(json.dumps({"rows": count, "seconds": elapsed, "peak_rss_mb": peak_mb}))


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], int(sys.argv[3]))


__all__: list[Any] = ["QUERY", "measure", "prepare"]
