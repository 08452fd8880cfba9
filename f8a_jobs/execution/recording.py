"""Records finished runs: ``record_outcomes`` in a caller's transaction, and ``RunWriter``, the
grouped commits of a process's finished runs (many runs' states, results and flows at once).

A run's end is written by the runs service; a run that failed its last try may pause its job,
which the job store writes, in the same transaction. A run the database refuses even alone is
recorded failed with the database's reason, without what it produced.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, Engine

from f8a_jobs.core.states import RunStatus
from f8a_jobs.execution import metrics
from f8a_jobs.execution.batches import BatchWriter, refusal_reason
from f8a_jobs.services import runs
from f8a_jobs.services.jobs import store as job_store
from f8a_jobs.services.runs import Outcome, logs
from f8a_jobs.storage import wakeups

log = logging.getLogger(__name__)


def record_outcomes(
    connection: Connection, outcomes: list[Outcome], tolerant: bool = False
) -> set[str]:
    """Record how runs ended (``runs.finish``) and pause the jobs that pause then; returns the
    runs recorded."""
    recorded = runs.finish(connection, outcomes, tolerant)
    job_store.pause(connection, runs.pausing(outcomes, recorded))
    return recorded


class RunWriter(BatchWriter[Outcome]):
    what = "runs"

    def __init__(
        self,
        engine: Engine,
        interval: float = 0.01,
        topic: str | None = None,
        written: Callable[[list[Outcome]], None] | None = None,
    ) -> None:
        """``topic``: what each commit wakes the leader about (a worker's: ``RUNS``)."""
        super().__init__(interval, written)
        self.engine = engine
        self.topic = topic

    def write(self, batch: list[Outcome], tolerant: bool) -> None:
        flows = sum(len(outcome.flows) for outcome in batch)
        with wakeups.changing(self.engine, self.topic) as connection:
            logs.write_last(connection, (outcome.log for outcome in batch))
            recorded = record_outcomes(connection, batch, tolerant)
            if flows:
                wakeups.request(connection, wakeups.FLOWS)
        for outcome in batch:
            if outcome.run.run_id in recorded:
                status = "retrying" if outcome.retry_at else outcome.status
                metrics.run_ended(
                    outcome.run.handler, status, outcome.started_at, outcome.finished_at
                )
        dropped = len(batch) - len(recorded)
        if dropped:
            log.warning(
                "%d runs were not recorded: another term failed them, or their job is gone", dropped
            )

    def refused(self, record: Outcome, refusal: Exception) -> Outcome:
        return refused(record, refusal)


def refused(outcome: Outcome, refusal: Exception) -> Outcome:
    """The run recorded failed, saying what the database refused, without its output."""
    error = f"the database refused this run's record: {refusal_reason(refusal)}"
    if outcome.error:
        error += f"; the run's own error: {outcome.error}"
    return Outcome(
        outcome.run,
        RunStatus.FAILED,
        outcome.finished_at,
        outcome.started_at,
        error=error,
        log=outcome.log,
    )
