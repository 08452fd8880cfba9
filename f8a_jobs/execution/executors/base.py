"""What every executor shares: running one claimed run (call its handler, say how it ended)
and what it asks of the workflow runner.

Every executor calls ``execute_run``; where the handler runs (a thread here, a worker
elsewhere) does not change what a run is or how it is recorded. ``Workflows`` is what an
executor asks of the workflow runner, which hands workflow runs' tries back to it.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from f8a_jobs.core import logs
from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.json_values import result_json
from f8a_jobs.core.states import WHOLE, RunStatus
from f8a_jobs.execution import capture
from f8a_jobs.execution.context import RunContext
from f8a_jobs.handlers.registry import get_handler
from f8a_jobs.services.runs import ClaimedRun, Outcome
from f8a_jobs.services.runs.logs import PLAIN, TryKey
from f8a_jobs.services.workflows.tries import TryOutcome

log = logging.getLogger(__name__)
# Read once, for the hot loops: an enum member is a class-attribute lookup per use.
SUCCEEDED = RunStatus.SUCCEEDED


class Workflows(Protocol):
    """The workflow runner, as an executor sees it."""

    @property
    def waiting(self) -> bool: ...

    def start_run(self, run: ClaimedRun) -> None: ...

    def add(self, outcome: TryOutcome, handed: bool = True) -> None: ...

    def wakeup(self) -> None: ...


def hand_over_workflows(claimed: list[ClaimedRun], workflows: Workflows | None) -> list[ClaimedRun]:
    """Give the workflow runs among ``claimed`` to the runner; the plain runs, to execute."""
    plain = [run for run in claimed if run.workflow is None and not run.resumed]
    if len(plain) < len(claimed) and workflows is not None:
        for run in claimed:
            if run.workflow is not None or run.resumed:
                workflows.start_run(run)
    return plain


def execute_run(run: ClaimedRun, engine: Engine, max_result_bytes: int) -> Outcome | None:
    """Run ``run``'s handler; the outcome to record, or None when the run recorded itself
    (it spilled its flows into a transaction of its own). Its log lines name the run, and
    what its handler logs is kept with its try, secrets masked (as in its error); the last of
    it is recorded with the outcome."""
    key = TryKey(run.run_id, PLAIN, WHOLE, run.tries)
    secrets = run.policy.get("secret_kwargs", ()) if run.policy else ()
    with logs.about(job_id=run.job_id, run_id=run.run_id):
        with capture.capturing(key, run.kwargs, secrets) as try_log:
            outcome = _execute(run, engine, max_result_bytes)
    if outcome is None:
        capture.write_later(try_log.last)
        return None
    outcome.log = try_log.last
    if outcome.error is not None:
        outcome.error = try_log.mask(outcome.error)
        outcome.traceback = try_log.mask(outcome.traceback)
    return outcome


def _execute(run: ClaimedRun, engine: Engine, max_result_bytes: int) -> Outcome | None:
    context = RunContext(run, engine)
    started = utcnow()
    try:
        handler_class = get_handler(run.handler)
        handler = handler_class(run.job_id, engine=engine, run=context)
        extra = {name: getattr(context, name) for name in handler_class.context_arguments()}
        result = result_json(handler.execute(**run.kwargs, **extra), max_result_bytes)
    except Exception as error:
        log.exception("job %s run %s failed", run.job_id, run.run_id)
        context.discard()
        return failed(run, error, started)
    outcome = Outcome(run, SUCCEEDED, utcnow(), started, result=result, flows=context.flows)
    if not context.spilled:
        return outcome
    try:
        context.finish_alone(outcome)
    except DBAPIError as error:
        log.exception("job %s run %s: its flows could not be written", run.job_id, run.run_id)
        return failed(run, error, started, "its flows could not be written: ")
    return None


def logged(name: str, work: Callable[[], None]) -> Callable[[], None]:
    """``work`` for a pool: an error it raises is logged under ``name``, not lost."""

    def run() -> None:
        try:
            work()
        except Exception:
            log.exception("%s failed", name)

    return run


def failed(run: ClaimedRun, error: BaseException, started: datetime, prefix: str = "") -> Outcome:
    return Outcome(
        run,
        RunStatus.FAILED,
        utcnow(),
        started,
        error=f"{prefix}{type(error).__name__}: {error}",
        traceback="".join(traceback.format_exception(error)),
    )
