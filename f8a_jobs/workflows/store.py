"""The one module that writes ``run_tasks`` rows: the runner's batches, and the API's retry.

The runner writes the units its engine changed, in the transaction that also records the
run's graph and end (``lifecycle``), fenced by the leader's epoch. The API resets a finished
run's failed tasks for a retry; nothing else writes task rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select, update

from f8a_jobs.storage.bulk import among, insert_rows, update_rows
from f8a_jobs.storage.tables import run_tasks
from f8a_jobs.workflows import CANCELLED, FAILED, PENDING, READY, RUNNING, UPSTREAM_FAILED, WHOLE
from f8a_jobs.workflows.engine import Unit

UNIT_COLUMNS = tuple(Unit.__slots__)
KEY = ("run_id", "task", "part")
# What a change may set: all but the key and the item (a part's item is set once).
CHANGED_COLUMNS = tuple(name for name in UNIT_COLUMNS if name not in (*KEY, "item"))
RETRIED = (FAILED, UPSTREAM_FAILED, CANCELLED)


def write_units(
    connection: Connection, run_id_of: dict[int, str], inserted: list[Unit], updated: list[Unit]
) -> None:
    """Insert new units and update changed ones (``run_id_of`` maps ``id(unit)`` to its run)."""
    insert_rows(connection, run_tasks, [unit.row(run_id_of[id(unit)]) for unit in inserted])
    rows = [
        {"run_id": run_id_of[id(unit)], "task": unit.task, "part": unit.part}
        | {name: getattr(unit, name) for name in CHANGED_COLUMNS}
        for unit in updated
    ]
    update_rows(connection, run_tasks, KEY, rows)


def load_units(connection: Connection, run_ids: list[str]) -> dict[str, list[Unit]]:
    """The units of ``run_ids``, by run."""
    found: dict[str, list[Unit]] = {run_id: [] for run_id in run_ids}
    if not run_ids:
        return found
    rows = connection.execute(
        select(run_tasks).where(among(connection, run_tasks.c.run_id, run_ids))
    ).mappings()
    for row in rows:
        found[row["run_id"]].append(Unit(**{name: row[name] for name in UNIT_COLUMNS}))
    return found


def heartbeat(
    connection: Connection, owner: str, keys: Iterable[tuple[str, str, int]], now: datetime
) -> None:
    """Show that this process still runs the tries of ``keys`` (run, task, part)."""
    rows = [
        {"run_id": run_id, "task": task, "part": part, "heartbeat_at": now}
        for run_id, task, part in keys
    ]
    update_rows(connection, run_tasks, KEY, rows, guards={"owner": owner, "state": RUNNING})


def reset_for_retry(connection: Connection, run_id: str, now: datetime) -> int:
    """A finished run's failed, upstream-failed and cancelled tasks go back to pending (a
    ``for_each`` task keeps its parts that succeeded: only the others are ready again), their
    tries counted afresh; the other tasks keep their results. Returns how many tasks."""
    failed = select(run_tasks.c.task).where(
        run_tasks.c.run_id == run_id,
        run_tasks.c.part == WHOLE,
        run_tasks.c.state.in_(RETRIED),
    )
    tasks = list(connection.execute(failed).scalars())
    if not tasks:
        return 0
    selected = (run_tasks.c.run_id == run_id) & run_tasks.c.task.in_(tasks)
    split = set(
        connection.execute(
            select(run_tasks.c.task).where(selected, run_tasks.c.part != WHOLE).distinct()
        ).scalars()
    )
    fresh = {**FRESH, "ready_at": now}
    connection.execute(
        update(run_tasks)
        .where(selected, run_tasks.c.part != WHOLE, run_tasks.c.state.in_(RETRIED))
        .values(state=READY, **fresh)
    )
    for state, names in ((RUNNING, split), (PENDING, set(tasks) - split)):
        if names:
            connection.execute(
                update(run_tasks)
                .where(run_tasks.c.run_id == run_id, run_tasks.c.part == WHOLE)
                .where(run_tasks.c.task.in_(names))
                .values(state=state, **fresh)
            )
    return len(tasks)


FRESH = {
    "tries": 0,
    "finished_at": None,
    "finished_seq": None,
    "executed": False,
    "result": None,
    "error": None,
    "traceback": None,
    "owner": None,
    "epoch": None,
}


def task_rows(connection: Connection, run_id: str) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(run_tasks).where(run_tasks.c.run_id == run_id).order_by(run_tasks.c.part)
    ).mappings()
    return [dict(row) for row in rows]


def delete_tasks(connection: Connection, run_ids: list[str]) -> None:
    if run_ids:
        connection.execute(delete(run_tasks).where(among(connection, run_tasks.c.run_id, run_ids)))
