"""How a remote try's outcome travels: a worker reports it on the task's row as JSON
(``run_tasks.reported``), the leader's runner reads it back (``outcome_of``), applies it and
clears it.

A worker process writes its reports in grouped commits (``ReportWriter``), and each commit
NOTIFYs the leader: a try's slot takes the next message as soon as its report is handed over.
A report the database refuses even alone becomes a failed try saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from f8a_jobs.core.json_values import storable_json
from f8a_jobs.core.states import TaskState
from f8a_jobs.execution.batches import BatchWriter, refusal_reason
from f8a_jobs.services.runs import logs, tasks
from f8a_jobs.services.workflows.tries import Start, TryOutcome
from f8a_jobs.storage import wakeups


@dataclass
class Report:
    """A try's outcome, on its way to the row of the try it ends."""

    start: Start
    outcome: TryOutcome
    worker: str | None  # the name the try was taken under (None: a process now gone)

    @property
    def key(self) -> tasks.TaskKey:
        return (self.start.run_id, self.start.task, self.start.part)

    def row(self) -> dict[str, Any]:
        run_id, task, part = self.key
        return {
            "run_id": run_id,
            "task": task,
            "part": part,
            "tries": self.start.try_number,
            "reported": report_json(self.outcome),
        }


class ReportWriter(BatchWriter[Report]):
    what = "task reports"

    def __init__(
        self, engine: Engine, written: Callable[[list[Report]], None] | None = None
    ) -> None:
        super().__init__(written=written)
        self.engine = engine

    def write(self, batch: list[Report], tolerant: bool) -> None:
        by_worker: dict[str | None, list[dict[str, Any]]] = {}
        for report in batch:
            by_worker.setdefault(report.worker, []).append(report.row())
        with wakeups.changing(self.engine, wakeups.TASKS) as connection:
            logs.write_last(connection, (report.outcome.log for report in batch))
            for worker, rows in by_worker.items():
                tasks.report(connection, worker, rows)

    def refused(self, record: Report, refusal: Exception) -> Report:
        ended = record.outcome
        outcome = TryOutcome(
            ended.run_id,
            ended.task,
            ended.part,
            ended.try_number,
            TaskState.FAILED,
            ended.started_at,
            ended.finished_at,
            ended.executed,
        )
        outcome.error = f"the database refused this try's report: {refusal_reason(refusal)}"
        if ended.error:
            outcome.error += f"; the try's own error: {ended.error}"
        outcome.log = ended.log
        return Report(record.start, outcome, record.worker)


def report_json(outcome: TryOutcome) -> dict[str, Any]:
    """A try's outcome as its row keeps it until the runner applies it (JSON the database
    stores: a NUL in the error or traceback is shown as ``\\x00``)."""
    flows = [{**flow, "created_at": flow["created_at"].isoformat()} for flow in outcome.flows]
    return {
        "state": outcome.state,
        "started_at": _iso(outcome.started_at),
        "finished_at": _iso(outcome.finished_at),
        "executed": outcome.executed,
        "result": outcome.result,
        "error": storable_json(outcome.error),
        "traceback": storable_json(outcome.traceback),
        "flows": flows,
    }


def outcome_of(row: Any) -> TryOutcome:
    """The outcome a worker reported on a task's row (``report_json``)."""
    report = row.reported
    flows = [
        {**flow, "created_at": datetime.fromisoformat(flow["created_at"])}
        for flow in report.get("flows", [])
    ]
    started = report.get("started_at")
    return TryOutcome(
        run_id=row.run_id,
        task=row.task,
        part=row.part,
        try_number=row.tries,
        state=report["state"],
        started_at=datetime.fromisoformat(started) if started else None,
        finished_at=datetime.fromisoformat(report["finished_at"]),
        executed=report.get("executed", False),
        result=report.get("result"),
        error=report.get("error"),
        traceback=report.get("traceback"),
        flows=flows,
        worker=row.worker,
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
