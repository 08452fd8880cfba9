"""The logs of runs and tries (``run_logs``): written in batches by the capturing process,
read a page at a time by the API, gone with their run.

A try's records are numbered from 1 (``seq``); a try that logged more than its bound keeps
its head and its tail, and one record numbered 0 between them says what was cut. The tail
moves while the try runs: the records it left behind are deleted, in the same transaction as
the newer ones are written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, delete, select, update

from f8a_jobs.storage.bulk import insert_rows
from f8a_jobs.storage.tables import job_runs, run_logs, run_tasks

CUT_SEQ = 0  # the record saying what was cut from a try's middle
PLAIN = ""  # the task of a plain run's records


@dataclass(frozen=True, slots=True)
class TryKey:
    """One try's log: of a plain run (task ``""``, part -1) or of a workflow task's part."""

    run_id: str
    task: str
    part: int
    try_number: int

    def columns(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "task": self.task,
            "part": self.part,
            "try_number": self.try_number,
        }


@dataclass(frozen=True, slots=True)
class Cut:
    """Records ``first`` … ``last`` of a try went (the tail moved past them); ``note`` is what
    its cut record says now."""

    key: TryKey
    first: int
    last: int
    note: str


@dataclass(slots=True)
class LastRecords:
    """A try's records not written when it ended: committed with its outcome, in the same
    transaction, so a try recorded ended has its whole log."""

    rows: list[dict[str, Any]]
    cut: Cut | None


def write_last(connection: Connection, lasts: Iterable[LastRecords | None]) -> None:
    """The last records of tries whose outcomes this transaction records."""
    rows: list[dict[str, Any]] = []
    cuts: list[Cut] = []
    for last in lasts:
        if last is not None:
            rows.extend(last.rows)
            if last.cut is not None:
                cuts.append(last.cut)
    if rows or cuts:
        write(connection, rows, cuts)


def write(connection: Connection, rows: list[dict[str, Any]], cuts: Iterable[Cut]) -> None:
    """Insert new records (cut records among them, the first time) and apply the cuts."""
    insert_rows(connection, run_logs, rows)
    cuts = list(cuts)
    if not cuts:
        return
    same_try = and_(
        run_logs.c.run_id == bindparam("k_run"),
        run_logs.c.task == bindparam("k_task"),
        run_logs.c.part == bindparam("k_part"),
        run_logs.c.try_number == bindparam("k_try"),
        run_logs.c.attempt.is_(None),
    )
    keys = [_bound(cut) for cut in cuts]
    connection.execute(
        delete(run_logs).where(
            same_try, run_logs.c.seq.between(bindparam("k_first"), bindparam("k_last"))
        ),
        keys,
    )
    connection.execute(
        update(run_logs)
        .where(same_try, run_logs.c.seq == CUT_SEQ)
        .values(message=bindparam("k_note")),
        keys,
    )


def _bound(cut: Cut) -> dict[str, Any]:
    key = cut.key
    return {
        "k_run": key.run_id,
        "k_task": key.task,
        "k_part": key.part,
        "k_try": key.try_number,
        "k_first": cut.first,
        "k_last": cut.last,
        "k_note": cut.note,
    }


def delete_for(connection: Connection, run_ids: Any) -> None:
    """The logs of these runs (a list, or a select of run ids) go with them."""
    connection.execute(delete(run_logs).where(run_logs.c.run_id.in_(run_ids)))


def keep_as_attempt(connection: Connection, run_id: str, attempt: int) -> None:
    """A retried workflow run counts its tasks' tries afresh: the logs of the attempt that
    ended stay, numbered as that attempt."""
    connection.execute(
        update(run_logs)
        .where(run_logs.c.run_id == run_id, run_logs.c.attempt.is_(None))
        .values(attempt=attempt)
    )


@dataclass(frozen=True)
class Query:
    """Which records a page holds (see ``GET /jobs/{job_id}/runs/{run_id}/logs``)."""

    run_id: str
    task: str | None = None  # None: a plain run's own, or every task of a workflow run
    part: int | None = None
    try_number: int | None = None  # None: the latest try (of each task part)
    attempt: int | None = None  # None: the current attempt
    level: int = 0
    after: int = 0
    limit: int = 1000


def page(connection: Connection, query: Query, workflow: bool) -> list[Mapping[Any, Any]]:
    """Up to ``limit`` records after the cursor, in the order they were logged."""
    statement = select(
        run_logs.c.id,
        run_logs.c.ts,
        run_logs.c.level,
        run_logs.c.logger,
        run_logs.c.message,
        run_logs.c.task,
        run_logs.c.part,
        run_logs.c.try_number,
    ).where(run_logs.c.run_id == query.run_id, run_logs.c.id > query.after)
    if query.attempt is None:
        statement = statement.where(run_logs.c.attempt.is_(None))
    else:
        statement = statement.where(run_logs.c.attempt == query.attempt)
    if not workflow:
        statement = statement.where(run_logs.c.task == PLAIN)
    elif query.task is not None:
        statement = statement.where(run_logs.c.task == query.task)
    if query.part is not None:
        statement = statement.where(run_logs.c.part == query.part)
    if query.level:
        statement = statement.where(run_logs.c.level >= query.level)
    statement = _of_try(statement, query, workflow)
    statement = statement.order_by(run_logs.c.id).limit(query.limit)
    return list(connection.execute(statement).mappings())


def _of_try(statement: Select[Any], query: Query, workflow: bool) -> Select[Any]:
    if query.try_number is not None:
        return statement.where(run_logs.c.try_number == query.try_number)
    if query.attempt is not None:  # an ended attempt: history, every try of it
        return statement
    if not workflow:
        tries = select(job_runs.c.tries).where(job_runs.c.run_id == query.run_id)
        return statement.where(run_logs.c.try_number == tries.scalar_subquery())
    return statement.join(
        run_tasks,
        and_(
            run_tasks.c.run_id == run_logs.c.run_id,
            run_tasks.c.task == run_logs.c.task,
            run_tasks.c.part == run_logs.c.part,
            run_tasks.c.tries == run_logs.c.try_number,
        ),
    )
