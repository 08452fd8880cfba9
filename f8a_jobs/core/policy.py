"""How a job's runs may fail and overlap: tries with delays, a timeout, pausing the job, and
what a run due while the previous one goes on does.

A failed try with tries left goes back to ``queued`` with a time (``not_before``) and holds no
thread meanwhile, as a workflow task's retry does; the delay grows by ``retry_backoff`` per try
(``Retry``: one formula for both). A run past ``timeout`` fails with a message naming the limit
and its late result is ignored (a thread cannot be stopped: it keeps its slot until the handler
returns). With ``pause_on_failure`` a run that fails after its last try pauses its job, and
says so.

``misfire_policy`` (slots missed while the service was down, within the grace time):
``coalesce`` (the latest runs, the others are recorded missed), ``run_all`` (every one runs,
oldest first), ``skip`` (none runs, not even one later than a second: all are recorded missed).

``overlap``: ``skip`` (the run due meanwhile is recorded missed), ``buffer_one`` (one run waits
and starts when the current one ends; further ones are missed; the waiting run is not subject
to the misfire grace time), ``allow`` (runs in parallel, up to ``max_parallel``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime, timedelta
from typing import Any

from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.fields import backoff_factor, queue_name, seconds_or, whole_number

POLICY_KEYS = (
    "tries",
    "retry_delay",
    "retry_backoff",
    "timeout",
    "pause_on_failure",
    "overlap",
    "max_parallel",
    "misfire_policy",
    "queue",
    "secret_kwargs",
)
SKIP, BUFFER_ONE, ALLOW = "skip", "buffer_one", "allow"  # overlap (skip: misfires too)
COALESCE, RUN_ALL = "coalesce", "run_all"  # misfire_policy
ON_TIME = timedelta(seconds=1)  # a slot fired later than this misfired (misfire_policy: skip)
MAX_PARALLEL = 1000
MAX_TRIES = 100
RETRY_KEYS = ("tries", "retry_delay", "retry_backoff")
PAUSED_NOTE = "; the job is paused (pause_on_failure)"
# A try whose process died runs again, not counted against ``tries``, this many times at most:
# a handler that kills its process each time then fails.
INTERRUPTIONS = 3


@dataclass(frozen=True, kw_only=True)
class Retry:
    """``tries`` in all; the second starts ``retry_delay`` seconds after the first failed, and
    each later one ``retry_backoff`` times longer after the one before. A job's runs and a
    workflow's tasks both retry so."""

    tries: int = 1
    retry_delay: float = 1.0
    retry_backoff: float = 1.0

    def retry_at(self, try_number: int, failed_at: datetime) -> datetime | None:
        """When try ``try_number`` + 1 may start, or None when that was the last."""
        if try_number >= self.tries:
            return None
        delay = self.retry_delay * self.retry_backoff ** (try_number - 1)
        return failed_at + timedelta(seconds=delay)


def parse_retry(data: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """The ``Retry`` fields of a job or a task (``path``: where the task stands)."""
    at = f"{path}." if path else ""
    return {
        "tries": whole_number(data.get("tries"), f"{at}tries", 1, MAX_TRIES),
        "retry_delay": seconds_or(data.get("retry_delay"), f"{at}retry_delay", 1.0, zero=True),
        "retry_backoff": backoff_factor(data.get("retry_backoff"), f"{at}retry_backoff"),
    }


@dataclass(frozen=True)
class RunPolicy(Retry):
    timeout: float | None = None
    pause_on_failure: bool = False
    overlap: str = SKIP
    max_parallel: int = 10
    misfire_policy: str = COALESCE
    queue: str | None = None  # remote execution: the broker queue its runs go to
    secret_kwargs: tuple[str, ...] = ()  # kwargs whose values logs and errors show as ***

    @classmethod
    def of(cls, data: Mapping[str, Any] | None) -> RunPolicy:
        """The policy a job row stores (None: the defaults)."""
        if not data:
            return DEFAULT
        if "secret_kwargs" in data:
            data = {**data, "secret_kwargs": tuple(data["secret_kwargs"])}
        return cls(**data)

    def json(self) -> dict[str, Any] | None:
        """The fields that differ from the defaults (None: a job without a policy)."""
        if self == DEFAULT:  # most jobs: one tuple comparison
            return None
        changed = {
            name: list(value) if isinstance(value, tuple) else value
            for name in FIELD_NAMES
            if (value := getattr(self, name)) != getattr(DEFAULT, name)
        }
        return changed or None


DEFAULT = RunPolicy()
# Read once: ``asdict`` deep-copies every field of every policy, a third of a job's parse.
FIELD_NAMES = tuple(field.name for field in dataclass_fields(RunPolicy))


def parse_policy(data: Mapping[str, Any], workflow: bool) -> RunPolicy:
    """The policy fields of a job; a workflow's tasks have their own tries and timeouts."""
    if not any(key in data for key in POLICY_KEYS):  # most jobs: the defaults, as parsed
        return DEFAULT
    if workflow:
        for key in (*RETRY_KEYS, "queue"):
            if key in data:
                raise InvalidInput(
                    key, "applies to a job with a handler: a workflow's tasks have their own"
                )
    pause = data.get("pause_on_failure", False)
    if not isinstance(pause, bool):
        raise InvalidInput("pause_on_failure", f"expected true or false, got {pause!r}")
    overlap = data.get("overlap", SKIP)
    if overlap not in (SKIP, BUFFER_ONE, ALLOW):
        raise InvalidInput("overlap", f"{overlap!r} is not one of {SKIP}, {BUFFER_ONE}, {ALLOW}")
    if "max_parallel" in data and overlap != ALLOW:
        raise InvalidInput("max_parallel", "applies with overlap: allow")
    misfire = data.get("misfire_policy", COALESCE)
    if misfire not in (COALESCE, RUN_ALL, SKIP):
        raise InvalidInput(
            "misfire_policy", f"{misfire!r} is not one of {COALESCE}, {RUN_ALL}, {SKIP}"
        )
    return RunPolicy(
        misfire_policy=misfire,
        overlap=overlap,
        max_parallel=whole_number(data.get("max_parallel"), "max_parallel", 10, MAX_PARALLEL),
        **parse_retry(data),
        timeout=None if workflow else seconds_or(data.get("timeout"), "timeout", None),
        pause_on_failure=pause,
        queue=None if workflow else queue_name(data.get("queue"), "queue"),
        secret_kwargs=parse_secret_kwargs(data.get("secret_kwargs")),
    )


def parse_secret_kwargs(value: Any) -> tuple[str, ...]:
    """``secret_kwargs``: names of kwargs (of the job, or of its tasks) to keep secret."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
        raise InvalidInput("secret_kwargs", "expected a list of kwarg names")
    return tuple(dict.fromkeys(value))


def overlap_refusal(policy: RunPolicy, waiting: int, running: int) -> str | None:
    """Why a run due while the job has ``waiting`` queued and ``running`` runs is missed (None:
    it is queued)."""
    if policy.overlap == ALLOW:
        if waiting + running < policy.max_parallel:
            return None
        return f"{policy.max_parallel} runs were going already (overlap: allow, max_parallel)"
    if policy.overlap == BUFFER_ONE:
        return None if waiting == 0 else "a run was waiting already (overlap: buffer_one)"
    return "the previous run was still running"
