"""A workflow task's try, as the engine hands it to an executor (``Start``) and as it comes
back (``TryOutcome``), and the claim the runner stamps on the tries it starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the engine, a pure core, handles outcomes without their records
    from f8a_jobs.services.runs.logs import LastRecords


@dataclass(frozen=True)
class TryClaim:
    """Who runs the tries a runner starts: the process and term, and ``worker`` (``""`` while
    a remote try's message waits in the broker; None in process)."""

    owner: str
    epoch: int
    worker: str | None = None


@dataclass(slots=True)
class Start:
    """A try to run: the unit, and the kwargs it runs with (``$result``s filled in)."""

    run_id: str
    job_id: str
    scheduled_for: datetime
    task: str
    part: int
    num_parts: int | None
    try_number: int
    handler: str
    kwargs: dict[str, Any]
    deadline: datetime | None
    queue: str | None = None  # the broker queue of a remote try (None: the default)
    timeout: float | None = None  # the task's timeout (a remote try's time limit)
    secret_kwargs: tuple[str, ...] = ()  # kwargs whose values its log and error show as ***


@dataclass(slots=True)
class TryOutcome:
    """How a try ended: ``succeeded``, ``satisfied`` (its check passed) or ``failed``."""

    run_id: str
    task: str
    part: int
    try_number: int
    state: str
    started_at: datetime | None
    finished_at: datetime
    executed: bool = False
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    flows: list[dict[str, Any]] = field(default_factory=list)
    worker: str | None = None  # the remote worker that ran it
    log: LastRecords | None = None  # the try's records not written yet: written with it
