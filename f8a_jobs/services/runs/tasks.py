"""The workflow task rows (``run_tasks``): what the runner's engine changed, heartbeats, a
remote worker taking a try and reporting how it ended, and the API's retry.

The runner writes the units its engine changed in the transaction that also records the run's
graph and end, fenced by the leader's epoch. A worker takes a try only while its row waits for
that very try in the broker and its run was not cancelled, and reports the outcome on the row
for the runner to apply; a cancelled run's tries still in the broker are withdrawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from f8a_jobs.core.states import WHOLE, RunStatus, TaskState
from f8a_jobs.services.runs.model import IN_BROKER, Unit
from f8a_jobs.storage.bulk import among, insert_rows, update_rows
from f8a_jobs.storage.tables import job_runs, run_tasks

UNIT_COLUMNS = tuple(Unit.__slots__)
KEY = ("run_id", "task", "part")
# What a change may set: all but the key and the item (a part's item is set once).
CHANGED_COLUMNS = tuple(name for name in UNIT_COLUMNS if name not in (*KEY, "item"))
RETRIED = (TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.CANCELLED)
TaskKey = tuple[str, str, int]  # run, task, part
WITHDRAWN = "the run was cancelled before a worker took this try"


def write_units(connection: Connection, inserted: list[Unit], updated: list[Unit]) -> None:
    """Insert new units and update changed ones."""
    insert_rows(connection, run_tasks, [unit.row() for unit in inserted])
    rows = [
        {"run_id": unit.run_id, "task": unit.task, "part": unit.part}
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
    connection: Connection,
    owner: str,
    keys: Iterable[TaskKey],
    now: datetime,
    waiting: bool = False,
) -> None:
    """Show that this process still runs the tries of ``keys`` (run, task, part); ``waiting``:
    those of them whose message waits in the broker (a worker that took one heartbeats it)."""
    guards: dict[str, Any] = {"owner": owner, "state": TaskState.RUNNING}
    if waiting:
        guards["worker"] = IN_BROKER
    update_rows(connection, run_tasks, KEY, _beats(keys, now), guards=guards)


def _beats(keys: Iterable[TaskKey], now: datetime) -> list[dict[str, Any]]:
    return [
        {"run_id": run_id, "task": task, "part": part, "heartbeat_at": now}
        for run_id, task, part in keys
    ]


# Built once: a worker takes every try with it, and building a statement costs more CPU than
# running it. A try of a run the API asked to cancel never starts, even before the runner has
# read the request (a revoke can be lost: the row decides).
_RUN_GOES_ON = (
    select(job_runs.c.run_id)
    .where(
        job_runs.c.run_id == run_tasks.c.run_id,
        job_runs.c.status == RunStatus.RUNNING,
        job_runs.c.cancel_requested.is_not(True),
    )
    .exists()
)
_TAKE = (
    update(run_tasks)
    .where(
        run_tasks.c.run_id == bindparam("key_run_id"),
        run_tasks.c.task == bindparam("key_task"),
        run_tasks.c.part == bindparam("key_part"),
        run_tasks.c.state == TaskState.RUNNING,
        run_tasks.c.tries == bindparam("try_number"),
        run_tasks.c.worker == IN_BROKER,
        _RUN_GOES_ON,
    )
    .values(worker=bindparam("taker"), started_at=bindparam("now"), heartbeat_at=bindparam("now"))
)


def start_remote(
    connection: Connection, key: TaskKey, try_number: int, worker: str, now: datetime
) -> bool:
    """A worker takes the try its message names: False when the message is stale (the try
    ended, another worker took it, or the task runs another try) or its run is cancelled, and
    must be dropped."""
    run_id, task, part = key
    parameters = {"key_run_id": run_id, "key_task": task, "key_part": part}
    parameters |= {"try_number": try_number, "taker": worker, "now": now}
    return bool(connection.execute(_TAKE, parameters).rowcount)


def withdraw(connection: Connection, run_ids: list[str], now: datetime) -> list[Any]:
    """End ``cancelled`` the tries of these cancelled runs whose messages no worker took (none
    may take them now): one guarded statement, so a try a worker is taking at this moment is
    either taken or withdrawn, never both. Returns the withdrawn tries (key and try)."""
    return list(
        connection.execute(
            update(run_tasks)
            .where(
                among(connection, run_tasks.c.run_id, run_ids),
                run_tasks.c.state == TaskState.RUNNING,
                run_tasks.c.worker == IN_BROKER,
            )
            .values(state=TaskState.CANCELLED, finished_at=now, error=WITHDRAWN)
            .returning(run_tasks.c.run_id, run_tasks.c.task, run_tasks.c.part, run_tasks.c.tries)
        )
    )


def beat_remote(
    connection: Connection, worker: str, keys: Iterable[TaskKey], now: datetime
) -> None:
    guards = {"worker": worker, "state": TaskState.RUNNING}
    update_rows(connection, run_tasks, KEY, _beats(keys, now), guards=guards)


def report(connection: Connection, worker: str | None, reports: list[dict[str, Any]]) -> None:
    """A worker records how its tries ended (rows of ``run_id``, ``task``, ``part``,
    ``tries``, ``reported``), each only if that try still runs, on ``worker`` (None: on
    whichever worker took it); the leader's runner applies them."""
    guards: dict[str, Any] = {"state": TaskState.RUNNING}
    if worker is not None:
        guards["worker"] = worker
    update_rows(connection, run_tasks, (*KEY, "tries"), reports, guards=guards)


def reports(connection: Connection) -> Sequence[Any]:
    """Every reported outcome not applied yet (a partial index holds just these rows)."""
    return connection.execute(
        select(run_tasks.c.run_id, run_tasks.c.task, run_tasks.c.part, run_tasks.c.worker)
        .add_columns(run_tasks.c.tries, run_tasks.c.reported)
        .where(run_tasks.c.reported.is_not(None))
    ).all()


def try_states(
    connection: Connection, run_ids: Iterable[str], state: str | None = None
) -> dict[TaskKey, Any]:
    """The state, tries, worker and heartbeat of every unit of ``run_ids`` (in ``state``)."""
    ids = sorted(set(run_ids))
    if not ids:
        return {}
    query = (
        select(run_tasks.c.run_id, run_tasks.c.task, run_tasks.c.part, run_tasks.c.state)
        .add_columns(run_tasks.c.tries, run_tasks.c.worker, run_tasks.c.heartbeat_at)
        .add_columns(run_tasks.c.reported.is_not(None).label("reported"))
        .where(among(connection, run_tasks.c.run_id, ids))
    )
    if state is not None:
        query = query.where(run_tasks.c.state == state)
    rows = connection.execute(query)
    return {(row.run_id, row.task, row.part): row for row in rows}


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
        .values(state=TaskState.READY, **fresh)
    )
    for state, names in ((TaskState.RUNNING, split), (TaskState.PENDING, set(tasks) - split)):
        if names:
            connection.execute(
                update(run_tasks)
                .where(run_tasks.c.run_id == run_id, run_tasks.c.part == WHOLE)
                .where(run_tasks.c.task.in_(names))
                .values(state=state, **fresh)
            )
    return len(tasks)


def reset_to_graph(connection: Connection, run_id: str, names: Sequence[str]) -> int:
    """A retry with the job's current definition: the tasks that succeeded (or were satisfied)
    and are still named in it keep their rows and results; every other row goes, and each task
    of the new graph without a row starts pending. Returns how many tasks run again."""
    done = select(run_tasks.c.task).where(
        run_tasks.c.run_id == run_id,
        run_tasks.c.part == WHOLE,
        run_tasks.c.state.in_((TaskState.SUCCEEDED, TaskState.SATISFIED)),
    )
    kept = set(connection.execute(done).scalars()) & set(names)
    connection.execute(
        delete(run_tasks).where(run_tasks.c.run_id == run_id, run_tasks.c.task.not_in(kept))
    )
    fresh = [Unit(run_id, name, WHOLE).row() for name in names if name not in kept]
    insert_rows(connection, run_tasks, fresh)
    return len(fresh)


def task_rows(connection: Connection, run_id: str) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(run_tasks).where(run_tasks.c.run_id == run_id).order_by(run_tasks.c.part)
    ).mappings()
    return [dict(row) for row in rows]
