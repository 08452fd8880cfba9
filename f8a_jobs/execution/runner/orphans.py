"""Tries whose process stopped heartbeating: those another process or an earlier term of this
one started, and those a remote worker took (their outcomes will not reach this runner). Each
runs again as a new try; a try whose outcome waits on its row is not lost."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Connection

from f8a_jobs.core.states import TaskState
from f8a_jobs.services.runs import tasks
from f8a_jobs.services.workflows.engine import WorkflowRun
from f8a_jobs.services.workflows.state import Key
from f8a_jobs.services.workflows.tries import TryClaim

ORPHANED = "the process running it ({owner}) stopped sending heartbeats for more than {lease:g} s"
Orphan = tuple[WorkflowRun, Key, str]  # the run, the unit, why it runs again


def orphaned_tries(
    connection: Connection,
    runs: Iterable[WorkflowRun],
    claim: TryClaim,
    remote: bool,
    lease: float,
    now: datetime,
) -> list[Orphan]:
    """The running tries of ``runs`` whose process is gone (``claim``: this term's own tries,
    which it knows are alive unless they run ``remote``ly)."""
    suspects = [
        (run, unit)
        for run in runs
        for unit in run.units.values()
        if unit.state == TaskState.RUNNING
        and unit.key in run.running
        and (remote or unit.owner != claim.owner or unit.epoch != claim.epoch)
    ]
    if not suspects:
        return []
    stale_before = now - timedelta(seconds=lease)
    running = tasks.try_states(connection, {run.run_id for run, _ in suspects}, TaskState.RUNNING)
    orphans = []
    for run, unit in suspects:
        row = running.get((run.run_id, unit.task, unit.part))
        ours = unit.owner == claim.owner and unit.epoch == claim.epoch
        if row is not None and (row.reported or (ours and not row.worker)):
            continue  # its outcome waits to be applied; or it is ours, here or in the broker
        if row is None or row.heartbeat_at is None or row.heartbeat_at < stale_before:
            who = row.worker if row is not None and row.worker else unit.owner
            orphans.append((run, unit.key, ORPHANED.format(owner=who, lease=lease)))
    return orphans
