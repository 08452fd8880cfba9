"""Run search (``GET /runs``): a page deep in a million runs against the first page, by the
keyset cursor the API hands out, and by the OFFSET a naive search would use."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select, text

from bench.ours import migrated, store_jobs
from f8a_jobs.services.runs import run_row
from f8a_jobs.services.runs.queries import SHOWN
from f8a_jobs.services.runs.search import RunSearch, cursor_of, search_runs
from f8a_jobs.storage.bulk import insert_rows
from f8a_jobs.storage.tables import job_runs

RUNS, JOBS, PAGE = 1_000_000, 1000, 100
DEEP_PAGES = (1_000, RUNS // PAGE)  # the 1,000th page, and the last
REPEATS = 20
T0 = datetime(2020, 1, 1, tzinfo=UTC)


def measure(url: str) -> dict[str, float]:
    engine = migrated(url)
    try:
        _store_runs(engine)
        figures = {"first_ms": _p50(lambda: _page(engine, None))}
        for number in DEEP_PAGES:
            cursor = _cursor_before(engine, (number - 1) * PAGE)
            figures[f"page_{number}_ms"] = _p50(lambda cursor=cursor: _page(engine, cursor))
            figures[f"offset_{number}_ms"] = _p50(lambda n=number: _offset(engine, (n - 1) * PAGE))
        return figures
    finally:
        engine.dispose()


def _store_runs(engine: Engine) -> None:
    store_jobs(engine, JOBS, {"version": 1, "type": "date", "run_date": T0.isoformat()}, "s")
    statuses = ("succeeded", "failed", "succeeded", "missed")
    for start in range(0, RUNS, 100_000):
        rows = [
            run_row(f"s{n % JOBS}", T0 + timedelta(seconds=n), statuses[n % 4])
            for n in range(start, start + 100_000)
        ]
        with engine.begin() as connection:
            insert_rows(connection, job_runs, rows)
    with engine.connect() as connection:
        connection.execute(text("ANALYZE job_runs"))
        connection.commit()
        assert connection.execute(select(func.count()).select_from(job_runs)).scalar() == RUNS


def _cursor_before(engine: Engine, depth: int) -> str | None:
    """The cursor a client holds after walking ``depth`` runs (read once, not timed)."""
    if depth == 0:
        return None
    query = select(job_runs.c.scheduled_for, job_runs.c.run_id).order_by(
        job_runs.c.scheduled_for.desc(), job_runs.c.run_id.desc()
    )
    with engine.connect() as connection:
        moment, run_id = connection.execute(query.offset(depth - 1).limit(1)).one()
    return cursor_of(moment, run_id)


def _page(engine: Engine, cursor: str | None) -> None:
    page = search_runs(engine, RunSearch(limit=PAGE, cursor=cursor))
    assert len(page["runs"]) == PAGE


def _offset(engine: Engine, offset: int) -> None:
    query = (
        select(*SHOWN)
        .order_by(job_runs.c.scheduled_for.desc(), job_runs.c.run_id.desc())
        .offset(offset)
        .limit(PAGE)
    )
    with engine.connect() as connection:
        assert len(connection.execute(query).all()) == PAGE


def _p50(call: Callable[[], None]) -> float:
    call()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000
