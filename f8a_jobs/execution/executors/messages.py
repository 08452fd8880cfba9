"""What the leader and the workers of the Celery executor share: the Celery app and the
messages, one per run or try, as JSON (never pickles).

A message names the try it starts (a run's ``tries``, a task's ``try_number``); the worker
takes it only if the row still waits for that try in the broker, so a message sent twice, or
a stale one, is dropped. The task id says the same: ``f8a-jobs-run-<run>-<try>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from celery import Celery

from f8a_jobs.core.settings import Settings
from f8a_jobs.services.runs import ClaimedRun
from f8a_jobs.services.workflows.tries import Start

RUN_TASK = "f8a_jobs.run"
TRY_TASK = "f8a_jobs.try"
HARD_LIMIT_GRACE = 10.0  # seconds after the soft time limit before the process is killed


def celery_app(settings: Settings) -> Celery:
    """The app both sides use: late acks, a message put back when its worker is lost, one
    message prefetched per process (a long task holds up no other), JSON only, no results."""
    app = Celery("f8a_jobs", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.task_queue,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5.0,
        # A message no worker acknowledged (its worker died) comes back after this; the rows
        # say what is still to do, so an early comeback is dropped, not run twice.
        broker_transport_options={"visibility_timeout": 4 * settings.run_lease},
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app


def run_message(run: ClaimedRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "job_id": run.job_id,
        "scheduled_for": run.scheduled_for.isoformat(),
        "handler": run.handler,
        "kwargs": run.kwargs,
        "epoch": run.epoch,
        "owner": run.owner,
        "policy": run.policy,
        "tries": run.tries,
        "trigger": run.trigger,
    }


def claimed_run(message: dict[str, Any]) -> ClaimedRun:
    return ClaimedRun(
        message["run_id"],
        message["job_id"],
        datetime.fromisoformat(message["scheduled_for"]),
        message["handler"],
        message["kwargs"],
        message["epoch"],
        message["owner"],
        policy=message["policy"],
        tries=message["tries"],
        trigger=message["trigger"],
    )


def try_message(start: Start) -> dict[str, Any]:
    return {
        "run_id": start.run_id,
        "job_id": start.job_id,
        "scheduled_for": start.scheduled_for.isoformat(),
        "task": start.task,
        "part": start.part,
        "num_parts": start.num_parts,
        "try_number": start.try_number,
        "handler": start.handler,
        "kwargs": start.kwargs,
        "deadline": start.deadline.isoformat() if start.deadline else None,
        "timeout": start.timeout,
        "secret_kwargs": list(start.secret_kwargs),
    }


def start_of(message: dict[str, Any]) -> Start:
    deadline = message["deadline"]
    return Start(
        run_id=message["run_id"],
        job_id=message["job_id"],
        scheduled_for=datetime.fromisoformat(message["scheduled_for"]),
        task=message["task"],
        part=message["part"],
        num_parts=message["num_parts"],
        try_number=message["try_number"],
        handler=message["handler"],
        kwargs=message["kwargs"],
        deadline=datetime.fromisoformat(deadline) if deadline else None,
        timeout=message.get("timeout"),
        secret_kwargs=tuple(message.get("secret_kwargs", ())),
    )


def run_task_id(run_id: str, tries: int) -> str:
    return f"f8a-jobs-run-{run_id}-{tries}"


def try_task_id(start: Start) -> str:
    return f"f8a-jobs-try-{start.run_id}-{start.part}-{start.try_number}-{start.task}"
