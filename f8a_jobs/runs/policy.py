"""How a plain job's runs may fail: tries with delays, a timeout, and pausing the job.

A failed try with tries left goes back to ``queued`` with a time (``not_before``) and holds no
thread meanwhile, as a workflow task's retry does; the delay grows by ``retry_backoff`` per try.
A run past ``timeout`` fails with a message naming the limit and its late result is ignored
(a thread cannot be stopped: it keeps its slot until the handler returns). With
``pause_on_failure`` a run that fails after its last try pauses its job, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from f8a_jobs.errors import InvalidInput
from f8a_jobs.workflows.spec import MAX_TRIES, backoff_factor, seconds_or, whole_number

POLICY_KEYS = ("tries", "retry_delay", "retry_backoff", "timeout", "pause_on_failure")
RETRY_KEYS = ("tries", "retry_delay", "retry_backoff")
PAUSED_NOTE = "; the job is paused (pause_on_failure)"


@dataclass(frozen=True)
class RunPolicy:
    tries: int = 1
    retry_delay: float = 1.0
    retry_backoff: float = 1.0
    timeout: float | None = None
    pause_on_failure: bool = False

    @classmethod
    def of(cls, data: Mapping[str, Any] | None) -> RunPolicy:
        return cls(**data) if data else DEFAULT

    def json(self) -> dict[str, Any] | None:
        """The fields that differ from the defaults (None: a job without a policy)."""
        changed = {
            key: value for key, value in asdict(self).items() if value != getattr(DEFAULT, key)
        }
        return changed or None

    def retry_at(self, try_number: int, failed_at: datetime) -> datetime | None:
        """When try ``try_number`` + 1 may start, or None when that was the last."""
        if try_number >= self.tries:
            return None
        delay = self.retry_delay * self.retry_backoff ** (try_number - 1)
        return failed_at + timedelta(seconds=delay)


DEFAULT = RunPolicy()


def parse_policy(data: Mapping[str, Any], workflow: bool) -> dict[str, Any] | None:
    """The policy fields of a job; a workflow's tasks have their own tries and timeouts."""
    if workflow:
        for key in RETRY_KEYS:
            if key in data:
                raise InvalidInput(
                    key, "applies to a job with a handler: a workflow's tasks have their own"
                )
    pause = data.get("pause_on_failure", False)
    if not isinstance(pause, bool):
        raise InvalidInput("pause_on_failure", f"expected true or false, got {pause!r}")
    policy = RunPolicy(
        tries=whole_number(data.get("tries"), "tries", 1, MAX_TRIES),
        retry_delay=seconds_or(data.get("retry_delay"), "retry_delay", 1.0, zero=True),
        retry_backoff=backoff_factor(data.get("retry_backoff"), "retry_backoff"),
        timeout=None if workflow else seconds_or(data.get("timeout"), "timeout", None),
        pause_on_failure=pause,
    )
    return policy.json()
