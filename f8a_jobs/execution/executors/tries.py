"""One try of one workflow task: DoJobber's check, execute, recheck; then what it returned.

A handler that defines ``check(**kwargs)`` is idempotent: when its check passes (returns
without raising, and not ``False``) the task is ``satisfied`` without running, its result what
the check found (``check_found``; JSON, as ``execute``'s must be); otherwise it executes, and
a failing recheck fails the try. Any executor calls ``execute_try``; where it runs does not
change what a try is.
"""

from __future__ import annotations

import logging
import traceback
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from f8a_jobs.core import logs
from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.json_values import result_json
from f8a_jobs.core.states import TaskState
from f8a_jobs.execution import capture
from f8a_jobs.execution.context import TaskContext
from f8a_jobs.handlers.base import BaseHandler, check_found
from f8a_jobs.handlers.registry import get_handler
from f8a_jobs.services.runs.logs import TryKey
from f8a_jobs.services.workflows.tries import Start, TryOutcome

log = logging.getLogger(__name__)


class CheckFailed(Exception):
    """The handler's check returned False."""


def execute_try(start: Start, engine: Engine, max_result_bytes: int) -> TryOutcome:
    """One try of a task: check, execute, recheck. Its log lines name the run and the task;
    what its handler logs is kept with the try, secrets masked (as in its error); the last of
    it is recorded with the outcome."""
    key = TryKey(start.run_id, start.task, start.part, start.try_number)
    with logs.about(job_id=start.job_id, run_id=start.run_id, task=start.task):
        with capture.capturing(key, start.kwargs, start.secret_kwargs) as try_log:
            outcome = _try(start, engine, max_result_bytes)
    outcome.log = try_log.last
    if outcome.error is not None:
        outcome.error = try_log.mask(outcome.error)
        outcome.traceback = try_log.mask(outcome.traceback)
    return outcome


def _try(start: Start, engine: Engine, max_result_bytes: int) -> TryOutcome:
    started = utcnow()
    context = TaskContext(start, engine)
    executed = False
    try:
        handler_class = get_handler(start.handler)
        handler = handler_class(start.job_id, engine=engine, run=context)
        extra = {name: getattr(context, name) for name in handler_class.context_arguments()}
        checks = handler_class.checks()
        passed, found = _passes(handler, start.kwargs) if checks else (False, None)
        if passed:
            satisfied = _outcome(start, TaskState.SATISFIED, started)
            satisfied.result = result_json(found, max_result_bytes)
            return satisfied
        executed = True
        returned = handler.execute(**start.kwargs, **extra)
        if checks:
            _recheck(handler, start.kwargs)
        result = result_json(returned, max_result_bytes)  # after the recheck, which may add to it
    except Exception as error:
        log.error("task %r of run %s failed", start.task, start.run_id, exc_info=error)
        outcome = _outcome(start, TaskState.FAILED, started, executed)
        outcome.error = f"{type(error).__name__}: {error}"
        outcome.traceback = "".join(traceback.format_exception(error))
        return outcome
    outcome = _outcome(start, TaskState.SUCCEEDED, started, executed)
    outcome.result = result
    outcome.flows = context.flows
    return outcome


def _passes(handler: BaseHandler, kwargs: dict[str, Any]) -> tuple[bool, Any]:
    """Whether the check passes, and what it found; it fails when it raises (a recheck's
    exception, unlike this one's, is the try's error)."""
    try:
        return check_found(handler.check(**kwargs))
    except Exception:
        return False, None


def _recheck(handler: BaseHandler, kwargs: dict[str, Any]) -> None:
    try:
        passed, _ = check_found(handler.check(**kwargs))
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
