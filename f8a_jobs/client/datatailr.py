"""Datatailr's scheduling API (``dt.scheduler``) on f8a-jobs: ``DAG``, ``Schedule``, ``Task``,
``ParallelTask``, ``Priority`` and the ``@batch`` decorator, so Datatailr's scripts run with
only their import line changed.

A DAG is one f8a-jobs workflow job (its ``Name`` is the job id), each task a workflow task
running an entry point (a function named ``pkg.module.function``, which the service imports from
the modules ``F8A_JOBS_HANDLER_MODULES`` allows). Each field means what it says where the
service has the concept (``Labels``, ``Priority``, ``AlertEmail``, ``Owner``/``Group``/
``Permissions``, ``FailAfter`` → ``timeout``, ``Retries`` → ``tries``, run-after schedules);
the others (``Image``, ``CPU``, ``Memory``…) are kept in the job's or task's ``metadata``.
``DevRun=True`` runs the DAG in this process instead (``devrun``), without a service.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any, ClassVar

from f8a_jobs.client.core import Client, Json
from f8a_jobs.client.devrun import DevRunResult, run_locally

__all__ = ["DAG", "ParallelTask", "Priority", "Schedule", "Task", "batch", "dt"]

TRANSLATION_ATTRIBUTE = "f8a_jobs_translation_table"  # read by the service (handlers/entrypoints)


class Priority:
    """Datatailr's ``dt.scheduler.api.Priority``: the service's priority names."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class Schedule:
    """When the DAG runs: Datatailr's calendar fields, or a run-after of another job (not
    both). An empty ``Schedule()`` (or none) runs only when started (``dag.run()``)."""

    CALENDAR: ClassVar[tuple[str, ...]] = (
        "at_minutes",
        "every_minute",
        "at_hours",
        "every_hour",
        "weekdays",
        "day_of_month",
        "first_last",
        "in_months",
        "every_month",
        "timezone",
        "rundate_offset",
    )

    def __init__(
        self,
        at_minutes: list[int] | None = None,
        every_minute: int | None = None,
        at_hours: list[int] | None = None,
        every_hour: int | None = None,
        weekdays: list[str] | None = None,
        day_of_month: int | None = None,
        first_last: dict[str, str] | None = None,
        in_months: list[int] | None = None,
        every_month: int | None = None,
        timezone: str | None = None,
        rundate_offset: int | None = None,
        run_after_job_name: str | None = None,
        run_after_job_uuid: str | None = None,
        run_after_job_condition: str | None = None,
    ) -> None:
        given = {key: value for key, value in locals().items() if key != "self"}
        self.calendar = {
            key: value for key, value in given.items() if key in self.CALENDAR and value
        }
        self.after = run_after_job_name or run_after_job_uuid
        self.condition = run_after_job_condition or "on success"
        if self.after and self.calendar:
            raise ValueError("a Schedule is either time-based or event-based, not both")

    def job_fields(self) -> Json:
        """The schedule fields of the job (an empty one: the job runs only when started)."""
        if self.after:
            return {"after": {"job_id": self.after, "on": self.condition}}
        if set(self.calendar) - {"timezone", "rundate_offset"}:
            return {"calendar": dict(self.calendar)}
        return {"manual": True}


class DAG:
    """A Batch Job: ``with DAG(Name=…, Schedule=…) as dag:`` collects the tasks made inside,
    ``dag.save()`` creates or updates the job, ``dag.run()`` starts a run now. With
    ``DevRun=True`` the block runs the DAG in this process when it ends (``dag.result``)."""

    _current: ClassVar[list[DAG]] = []

    def __init__(
        self,
        Name: str,
        Tag: str | None = None,
        Schedule: Schedule | None = None,
        DevRun: bool = False,
        WorkDir: str | None = None,
        Image: str | None = None,
        Labels: str | list[str] | None = None,
        FailAfter: str | None = None,
        FailAfterRunChildren: str | None = None,
        RunAs: str | None = None,
        Owner: str | None = None,
        Group: str | None = None,
        Permissions: str | None = None,
        Priority: str | None = None,
        AlertEmail: str | None = None,
        AlertOnlyFailures: bool | None = None,
        AlertSMS: str | None = None,
        Description: str | None = None,
        client: Client | None = None,
    ) -> None:
        if DevRun and not WorkDir:
            raise ValueError("DevRun=True needs WorkDir: the folder with your packages")
        self.name = Name
        self.schedule = Schedule
        self.dev_run = DevRun
        self.work_dir = os.path.expanduser(WorkDir) if WorkDir else None
        self.image = Image
        self.fields = {
            "labels": Labels,
            "timeout": FailAfter,
            "owner": Owner,
            "group": Group,
            "permissions": Permissions,
            "priority": Priority,
        }
        self.alerts = _alerts(AlertEmail, AlertOnlyFailures)
        self.metadata = _given(
            Tag=Tag,
            Image=Image,
            FailAfterRunChildren=FailAfterRunChildren,
            RunAs=RunAs,
            AlertSMS=AlertSMS,
            Description=Description,
        )
        self.tasks: list[Task] = []
        self.result: DevRunResult | None = None
        self._client = client
        self._saved = False

    # --- the block ----------------------------------------------------------------------------

    def __enter__(self) -> DAG:
        if self.work_dir and self.work_dir not in sys.path:
            sys.path.insert(0, self.work_dir)
        DAG._current.append(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, *_rest: object) -> None:
        DAG._current.pop()
        if kind is None and self.dev_run:
            self.result = run_locally(self.name, [task.local() for task in self.tasks])
            self.result.raise_if_failed()

    @classmethod
    def current(cls) -> DAG | None:
        return cls._current[-1] if cls._current else None

    def add(self, task: Task) -> None:
        if any(other.name == task.name for other in self.tasks):
            raise ValueError(f"DAG {self.name!r} already has a task named {task.name!r}")
        self.tasks.append(task)

    # --- the service --------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client()
        return self._client

    def job(self) -> Json:
        """The job this DAG is, as ``POST /jobs`` takes it."""
        schedule = self.schedule.job_fields() if self.schedule else {}
        job: Json = {
            "job_id": self.name,
            "tasks": [task.json(self.image) for task in self.tasks],
            **schedule,
            **{key: value for key, value in self.fields.items() if value is not None},
        }
        if not schedule:
            job["manual"] = True  # no Schedule: the job runs only when started
        if self.alerts is not None:
            job["alerts"] = self.alerts
        if self.metadata:
            job["metadata"] = self.metadata
        return job

    def save(self) -> Json:
        """Create the job, or make the stored one match this DAG (its run history stays); the
        job as stored. Saving again changes nothing."""
        if self.dev_run:
            raise RuntimeError("a DevRun DAG runs in this process; it is not saved")
        job = self.client.save_job(self.job())
        self._saved = True
        return job

    def run(self) -> Json | DevRunResult:
        """Start a run now; the run, queued. A DAG never saved is saved first. A DevRun runs
        here and returns its result."""
        if self.dev_run:
            self.result = run_locally(self.name, [task.local() for task in self.tasks])
            return self.result
        if not self._saved:
            self.save()
        return self.client.run_now(self.name)


class Task:
    """One job of the DAG: an ``Entrypoint`` (``pkg.module.function``) with its
    ``ConfigurationJson`` (the function's ``job_config``). ``a >> b``: b runs after a."""

    def __init__(
        self,
        Name: str,
        Entrypoint: str | Callable[..., Any],
        dag: DAG | None = None,
        Image: str | None = None,
        Description: str | None = None,
        ConfigurationJson: dict[str, Any] | list[dict[str, Any]] | None = None,
        Arch: str | None = None,
        Os: str | None = None,
        CPU: int | None = None,
        Memory: int | None = None,
        Disk: int | None = None,
        Retries: int = 0,
        CountForPrewarming: bool | None = None,
        Priority: str | None = None,
    ) -> None:
        owner = dag or DAG.current()
        if owner is None:
            raise ValueError(f"task {Name!r}: give dag=… or make it inside 'with DAG(...)'")
        self.name = Name
        self.entrypoint = Entrypoint
        self.config = ConfigurationJson
        self.retries = Retries
        self.priority = Priority
        self.kwargs: Json = {}  # set by a @batch call: its arguments that are no task
        self.upstream: list[Task] = []
        self.metadata = _given(
            Image=Image,
            Description=Description,
            Arch=Arch,
            Os=Os,
            CPU=CPU,
            Memory=Memory,
            Disk=Disk,
            CountForPrewarming=CountForPrewarming,
        )
        owner.add(self)

    def __rshift__(self, other: Task | list[Task]) -> Task | list[Task]:
        for task in [other] if isinstance(other, Task) else other:
            task.after(self)
        return other

    def __rrshift__(self, other: list[Task]) -> Task:
        for task in other:
            self.after(task)
        return self

    def after(self, task: Task) -> None:
        if task is self:
            raise ValueError(f"task {self.name!r} cannot run after itself")
        if task not in self.upstream:
            self.upstream.append(task)

    @property
    def entrypoint_path(self) -> str:
        target = self.entrypoint
        if isinstance(target, str):
            return target
        return f"{target.__module__}.{target.__qualname__}"

    def json(self, dag_image: str | None = None) -> Json:
        """The workflow task, as the service takes it."""
        task: Json = {"name": self.name, "entrypoint": self.entrypoint_path}
        if self.upstream:
            task["depends_on"] = [item.name for item in self.upstream]
        kwargs = dict(self.kwargs)
        if isinstance(self.config, dict):
            kwargs["job_config"] = self.config
        if kwargs:
            task["kwargs"] = kwargs
        if self.retries:
            task["tries"] = self.retries + 1
        if self.priority:
            task["priority"] = self.priority
        metadata = dict(self.metadata)
        if dag_image and "Image" not in metadata:
            metadata["Image"] = dag_image
        if metadata:
            task["metadata"] = metadata
        return task

    def local(self) -> Json:
        """What a dev run needs: the task, its function and its parts' configurations."""
        return {
            "name": self.name,
            "function": self.entrypoint,
            "after": [item.name for item in self.upstream],
            "kwargs": dict(self.kwargs),
            "config": self.config,
            "tries": self.retries + 1,
        }


class ParallelTask(Task):
    """A task run once per configuration in ``ConfigurationJson`` (a list of dicts, each with
    its part's ``Name`` and ``Description``): one part each, on the service a ``for_each``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.config, list) or not all(isinstance(c, dict) for c in self.config):
            raise ValueError(f"ParallelTask {self.name!r}: ConfigurationJson is a list of dicts")

    def json(self, dag_image: str | None = None) -> Json:
        task = super().json(dag_image)
        task["for_each"] = [{"job_config": config} for config in self.config or []]
        return task


def batch(
    translation_table: dict[str, str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Datatailr's ``@dt.scheduler.batch()``: the function becomes an entry point. Called
    inside ``with DAG(...)`` it adds itself as a task (named after it) instead of running,
    and the tasks passed as its arguments run before it, their results passed to it under
    those arguments' names; called elsewhere it runs as the function it is.
    ``translation_table`` maps its arguments to the reserved ones (``{'running_date':
    'rundate'}``)."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def called(*args: Any, **kwargs: Any) -> Any:
            dag = DAG.current()
            if dag is None:
                return function(*args, **kwargs)
            return _task_of_call(dag, called, args, kwargs)

        setattr(called, TRANSLATION_ATTRIBUTE, dict(translation_table or {}))
        return called

    return decorate


def _task_of_call(
    dag: DAG, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Task:
    bound = inspect.signature(function).bind_partial(*args, **kwargs)
    name = _unique(function.__name__, (task.name for task in dag.tasks))
    task = Task(Name=name, Entrypoint=function, dag=dag, Image=dag.image)
    table: dict[str, str] = {}
    for argument, value in bound.arguments.items():
        if isinstance(value, Task):
            task.after(value)
            table[value.name] = argument
        else:
            task.kwargs[argument] = value
    if table:
        task.config = {"arg_translation_table": table}
    return task


def _unique(name: str, taken: Iterable[str]) -> str:
    names = set(taken)
    candidate, number = name, 1
    while candidate in names:
        number += 1
        candidate = f"{name}-{number}"
    return candidate


def _alerts(email: str | None, only_failures: bool | None) -> list[Json] | None:
    if not email:
        return None
    events = ["failure"] if only_failures else ["failure", "success"]
    return [{"email": email, "on": events}]


def _given(**fields: Any) -> Json:
    return {key: value for key, value in fields.items() if value is not None}


#: ``dt`` as Datatailr's scripts name it: ``@dt.scheduler.batch()`` needs only the import line
#: ``from f8a_jobs.client.datatailr import dt``.
dt = SimpleNamespace(scheduler=sys.modules[__name__])
