"""Runs end: ``running`` → ``succeeded`` | ``failed`` (or ``queued`` again for a retry), with
their results and flows; a workflow run's graph and end.

Only runs still ``running`` under the claim (owner and epoch) that started them change, so
nobody overwrites a run another term has since failed or run again. A run that ends so may
pause its job (``pause_on_failure``: the caller does, in the same transaction: jobs are the
job service's rows) and queues the runs of the jobs that follow it. An end that a queued run
of the same job waits for (a backfill's next slot, a buffered run) asks for an in-process
wake-up (``ENDED``) once it commits, so that run starts at once, not at the next poll.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.json_values import storable_text
from f8a_jobs.core.policy import PAUSED_NOTE
from f8a_jobs.core.states import RunStatus
from f8a_jobs.services.alerts import Ended
from f8a_jobs.services.flows import outbox
from f8a_jobs.services.runs.model import ERROR_LIMIT, ClaimedRun, Outcome
from f8a_jobs.services.runs.queue import after_ends
from f8a_jobs.storage import wakeups
from f8a_jobs.storage.bulk import among, update_rows
from f8a_jobs.storage.tables import job_runs, jobs


def finish(connection: Connection, outcomes: list[Outcome], tolerant: bool = False) -> set[str]:
    """Record how runs ended and write their flows, in the caller's transaction.

    Only runs still ``running`` under the claim that started them change; the flows of any
    other run are dropped with it. ``tolerant``: skip flows whose key exists already. Returns
    the runs recorded (``pausing`` tells which of their jobs to pause).
    """
    rows = [outcome.row() for outcome in outcomes]
    recorded = set(
        update_rows(
            connection,
            job_runs,
            ("run_id", "owner", "epoch", "tries"),
            rows,
            guards={"status": RunStatus.RUNNING},
            returning="run_id",
        )
    )
    if any(o.run.holds_back and o.run.run_id in recorded for o in outcomes):
        wakeups.request(connection, wakeups.ENDED)  # a retry too: it waits queued, not running
    ended = [o for o in outcomes if o.run.run_id in recorded and o.retry_at is None]
    after_ends(
        connection,
        [Ended(o.run.job_id, o.status, o.finished_at, o.run.run_id) for o in ended],
        utcnow(),
    )
    flows = [
        flow for outcome in outcomes if outcome.run.run_id in recorded for flow in outcome.flows
    ]
    outbox.insert(connection, flows, tolerant)
    return recorded


def pausing(outcomes: list[Outcome], recorded: set[str]) -> list[str]:
    """The jobs whose recorded run failed its last try and that pause then."""
    return [o.run.job_id for o in outcomes if o.run.run_id in recorded and o.pauses_job]


def record_graph(connection: Connection, run: ClaimedRun, graph: dict[str, Any]) -> bool:
    """Fix a workflow run's expanded graph (later edits of its jobs do not change it)."""
    return bool(
        connection.execute(
            update(job_runs)
            .where(
                job_runs.c.run_id == run.run_id,
                job_runs.c.owner == run.owner,
                job_runs.c.status == RunStatus.RUNNING,
            )
            .values(graph=graph)
        ).rowcount
    )


def finish_workflows(connection: Connection, epoch: int, rows: list[dict[str, Any]]) -> list[str]:
    """Record the end of workflow runs this term runs (``run_id``, ``job_id``, ``status``,
    ``error``, ``result``, ``finished_at``) and queue their followers. Returns the jobs to
    pause (``pause_on_failure``)."""
    failing = _pausing(
        connection, [row["job_id"] for row in rows if row["status"] == RunStatus.FAILED]
    )
    changes = [
        {
            **{name: value for name, value in row.items() if name != "job_id"},
            "error": storable_text(
                f"{row['error']}{PAUSED_NOTE}" if row["job_id"] in failing else row["error"],
                ERROR_LIMIT,
            ),
        }
        for row in rows
    ]
    recorded = set(
        update_rows(
            connection,
            job_runs,
            ("run_id",),
            changes,
            guards={"status": RunStatus.RUNNING, "epoch": epoch},
            returning="run_id",
        )
    )
    ended = [row for row in rows if row["run_id"] in recorded]
    if ended:  # workflow runs are few: any may be a backfill's slot, or buffer the next run
        wakeups.request(connection, wakeups.ENDED)
    after_ends(
        connection,
        [Ended(row["job_id"], row["status"], row["finished_at"], row["run_id"]) for row in ended],
        utcnow(),
    )
    return sorted({row["job_id"] for row in ended} & failing)


def _pausing(connection: Connection, job_ids: list[str]) -> set[str]:
    """Of these jobs, those that pause when a run fails (``pause_on_failure``)."""
    if not job_ids:
        return set()
    query = select(jobs.c.job_id).where(
        among(connection, jobs.c.job_id, job_ids),
        jobs.c.policy["pause_on_failure"].as_boolean().is_(True),
    )
    return set(connection.execute(query).scalars())
