"""What one runner step writes, in one transaction fenced by the term's epoch: new graphs,
task rows, flows of successful tasks, the last records of ended tries and ended runs (pausing their jobs as they ask). Only
after that commit are the tries it started handed to the executor, so a try that runs is
always a row that says so."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from f8a_jobs.execution import metrics
from f8a_jobs.execution.runner.cleanup import Cleanup
from f8a_jobs.services import runs
from f8a_jobs.services.flows import outbox
from f8a_jobs.services.jobs import store as job_store
from f8a_jobs.services.runs import ClaimedRun, Unit, logs, tasks
from f8a_jobs.services.runs.logs import LastRecords
from f8a_jobs.services.workflows.engine import WorkflowRun
from f8a_jobs.services.workflows.tries import Start
from f8a_jobs.storage import wakeups
from f8a_jobs.storage.fencing import fence

UnitId = tuple[str, str, int]  # run, task, part


@dataclass
class Batch:
    """What a step writes in its one transaction, and what it does once that committed."""

    graphs: list[tuple[ClaimedRun, dict[str, Any]]] = field(default_factory=list)
    inserted: dict[UnitId, Unit] = field(default_factory=dict)
    updated: dict[UnitId, Unit] = field(default_factory=dict)
    flows: list[dict[str, Any]] = field(default_factory=list)
    logs: list[LastRecords] = field(default_factory=list)  # the tries' last records
    ended: list[dict[str, Any]] = field(default_factory=list)
    began: dict[str, datetime | None] = field(default_factory=dict)  # ended runs' starts
    starts: list[Start] = field(default_factory=list)
    cleanups: list[tuple[str, list[Cleanup]]] = field(default_factory=list)  # by run

    def collect(self, run: WorkflowRun) -> None:
        inserted, updated = run.take_dirty()
        for unit in inserted:
            self.inserted[(unit.run_id, unit.task, unit.part)] = unit
        for unit in updated:
            key = (unit.run_id, unit.task, unit.part)
            if key not in self.inserted:
                self.updated[key] = unit

    @property
    def empty(self) -> bool:
        return not (self.graphs or self.inserted or self.updated or self.ended or self.starts)

    def kept(self) -> Batch:
        """What to write with the next step, after this batch's write failed."""
        self.updated = {key: unit for key, unit in self.updated.items() if key not in self.inserted}
        return self


def write(connection: Connection, epoch: int, batch: Batch) -> None:
    """Write ``batch`` and commit; raises ``LostLeadership`` when the term has ended."""
    with connection.begin():
        fence(connection, epoch)
        for claimed_run, graph in batch.graphs:
            runs.record_graph(connection, claimed_run, graph)
        tasks.write_units(connection, list(batch.inserted.values()), list(batch.updated.values()))
        outbox.insert(connection, batch.flows, tolerant=True)
        logs.write_last(connection, batch.logs)
        job_store.pause(connection, runs.finish_workflows(connection, epoch, batch.ended))
    wakeups.publish_requested(connection)
    count(batch)


def count(batch: Batch) -> None:
    """The metrics of what a step wrote."""
    states = Counter(unit.state for unit in [*batch.inserted.values(), *batch.updated.values()])
    for state, number in states.items():
        metrics.task_changed(state, number)
    for row in batch.ended:
        began = batch.began.get(row["run_id"])
        metrics.run_ended("", row["status"], began, row["finished_at"])
