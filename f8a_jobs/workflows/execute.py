"""One try of one task: DoJobber's check, execute, recheck; then what it returned.

A handler that defines ``check(**kwargs)`` is idempotent: when its check passes (returns
without raising, and not ``False``) the task is ``satisfied`` without running; otherwise it
executes, and a failing recheck fails the try. Any executor calls ``execute_try``; where it
runs does not change what a try is.
"""

from __future__ import annotations

import hashlib
import logging
import traceback
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from f8a_jobs import logs
from f8a_jobs.flows.outbox import check_storable, flow_row
from f8a_jobs.handlers.base import BaseHandler
from f8a_jobs.handlers.registry import get_handler
from f8a_jobs.jobs import schedule_of_run
from f8a_jobs.json_values import result_json
from f8a_jobs.schedules import rundate, utcnow
from f8a_jobs.workflows import FAILED, SATISFIED, SUCCEEDED
from f8a_jobs.workflows.engine import Start, TryOutcome

log = logging.getLogger(__name__)


class CheckFailed(Exception):
    """The handler's check returned False."""


class TaskContext:
    """What a task's handler may ask for: Datatailr's reserved arguments, and flows."""

    def __init__(self, start: Start, engine: Engine) -> None:
        self.start = start
        self.engine = engine
        self.flows: list[dict[str, Any]] = []

    @property
    def run_id(self) -> str:
        return self.start.run_id

    @property
    def scheduled_for(self) -> datetime:
        return self.start.scheduled_for

    @property
    def rundate(self) -> str:
        """The workflow run's rundate (its job's schedule), read only when asked for."""
        return rundate(schedule_of_run(self.engine, self.start.run_id), self.start.scheduled_for)

    @property
    def task_name(self) -> str:
        return self.start.task

    @property
    def part_num(self) -> int | None:
        return self.start.part if self.start.num_parts is not None else None

    @property
    def num_parts(self) -> int | None:
        return self.start.num_parts

    def emit_flows(self, flows: Any) -> int:
        """Flows of a task reach the outbox with the task's success; their key is the task's,
        so a task tried again writes the same keys. A flow the database would refuse fails
        the try here: the runner writes many runs' flows in one commit, which it must not
        lose."""
        key = flow_key(self.start)
        before = len(self.flows)
        now = utcnow()
        for flow in flows:
            check_storable(flow)
            self.flows.append(flow_row(self.start.job_id, key, len(self.flows), flow, now))
        return len(self.flows) - before


def flow_key(start: Start) -> str:
    """32 hex digits standing for the task's part in the outbox's ``run_id`` column."""
    digest = hashlib.blake2b(f"{start.run_id}/{start.task}/{start.part}".encode(), digest_size=16)
    return digest.hexdigest()


def execute_try(start: Start, engine: Engine, max_result_bytes: int) -> TryOutcome:
    """One try of a task: check, execute, recheck. Its log lines name the run and the task."""
    with logs.about(job_id=start.job_id, run_id=start.run_id, task=start.task):
        return _try(start, engine, max_result_bytes)


def _try(start: Start, engine: Engine, max_result_bytes: int) -> TryOutcome:
    started = utcnow()
    context = TaskContext(start, engine)
    executed = False
    try:
        handler_class = get_handler(start.handler)
        handler = handler_class(start.job_id, engine=engine, run=context)  # type: ignore[arg-type]
        extra = {name: getattr(context, name) for name in handler_class.context_arguments()}
        checks = _has_check(handler_class)
        if checks and _passes(handler, start.kwargs):
            return _outcome(start, SATISFIED, started)
        executed = True
        result = result_json(handler.execute(**start.kwargs, **extra), max_result_bytes)
        if checks:
            _recheck(handler, start.kwargs)
    except Exception as error:
        log.info("task %r of run %s failed: %s", start.task, start.run_id, error)
        outcome = _outcome(start, FAILED, started, executed)
        outcome.error = f"{type(error).__name__}: {error}"
        outcome.traceback = "".join(traceback.format_exception(error))
        return outcome
    outcome = _outcome(start, SUCCEEDED, started, executed)
    outcome.result = result
    outcome.flows = context.flows
    return outcome


def _has_check(handler_class: type[BaseHandler]) -> bool:
    return callable(getattr(handler_class, "check", None))


def _passes(handler: BaseHandler, kwargs: dict[str, Any]) -> bool:
    """The check passes unless it raises or returns ``False``; a recheck's exception is the
    try's error."""
    try:
        return handler.check(**kwargs) is not False  # type: ignore[attr-defined]
    except Exception:
        return False


def _recheck(handler: BaseHandler, kwargs: dict[str, Any]) -> None:
    try:
        passed = handler.check(**kwargs) is not False  # type: ignore[attr-defined]
    except Exception as error:
        raise CheckFailed(
            f"the recheck after execute failed: {type(error).__name__}: {error}"
        ) from error
    if not passed:
        raise CheckFailed("the recheck after execute failed: check returned False")


def _outcome(start: Start, state: str, started: datetime, executed: bool = False) -> TryOutcome:
    return TryOutcome(
        run_id=start.run_id,
        task=start.task,
        part=start.part,
        try_number=start.try_number,
        state=state,
        started_at=started,
        finished_at=utcnow(),
        executed=executed,
    )


def cleanup(handler: str, job_id: str, kwargs: dict[str, Any], engine: Engine | None) -> None:
    """Run a handler's ``cleanup(**kwargs)``, if it has one."""
    handler_class = get_handler(handler)
    method = getattr(handler_class, "cleanup", None)
    if callable(method):
        handler_class(job_id, engine=engine).cleanup(**kwargs)  # type: ignore[attr-defined]
