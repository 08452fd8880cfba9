"""Runs: the one owner of run rows (``job_runs``) and workflow task rows (``run_tasks``).

One module per change of state, as procrastinate's manager has one method per transition:
``queue`` (→ queued: due runs, run-now, backfill, followers), ``claim`` (→ running),
``finish`` (→ ended, or queued again for a retry), ``recover`` (heartbeats; runs whose process
is gone), ``control`` (the API's cancel and retry), ``remove`` (deletes, retention), ``tasks``
(the task rows). ``fire_rules`` decides what a due job's fire becomes, without I/O; ``model``
holds the values; ``queries``, ``search`` (runs across jobs) and ``backfill`` serve the API. No other module of the package
issues INSERT, UPDATE or DELETE on these tables (``tests/test_structure.py`` checks it).
"""

from f8a_jobs.services.runs.claim import claim, start_remote
from f8a_jobs.services.runs.control import cancel_requested, request_cancel, requeue
from f8a_jobs.services.runs.finish import finish, finish_workflows, pausing, record_graph
from f8a_jobs.services.runs.model import (
    IN_BROKER,
    Claimant,
    ClaimedRun,
    Fire,
    Outcome,
    Unit,
    run_row,
)
from f8a_jobs.services.runs.queries import (
    clean_failed,
    list_failed,
    list_runs,
    request_run,
    run_json,
)
from f8a_jobs.services.runs.queue import queue_fires, queue_manual
from f8a_jobs.services.runs.recover import (
    adopt_workflows,
    beat_remote,
    fail_orphans,
    heartbeat,
    workflow_rows,
)
from f8a_jobs.services.runs.remove import delete_old_runs, delete_runs

__all__ = [
    "IN_BROKER",
    "Claimant",
    "ClaimedRun",
    "Fire",
    "Outcome",
    "Unit",
    "adopt_workflows",
    "beat_remote",
    "cancel_requested",
    "claim",
    "clean_failed",
    "delete_old_runs",
    "delete_runs",
    "fail_orphans",
    "finish",
    "finish_workflows",
    "heartbeat",
    "list_failed",
    "list_runs",
    "pausing",
    "queue_fires",
    "queue_manual",
    "record_graph",
    "request_cancel",
    "request_run",
    "requeue",
    "run_json",
    "run_row",
    "start_remote",
    "workflow_rows",
]
