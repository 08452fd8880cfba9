"""What one due job's fire becomes: which slots run and which are recorded missed, and why
(``misfire_policy``, the grace time, ``overlap``). Pure: the rows, for a given ``now``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from f8a_jobs.core.policy import COALESCE, ON_TIME, RUN_ALL, SKIP, RunPolicy, overlap_refusal
from f8a_jobs.core.states import RunStatus
from f8a_jobs.services.runs.model import Fire, missed_row, run_row

# Read once, for the hot loops: an enum member is a class-attribute lookup per use.
QUEUED = RunStatus.QUEUED


def overlap_of(fire: Fire, busy: bool, counts: dict[str, tuple[int, int]]) -> str | None:
    """Why the run due now is missed because of the job's runs going on (None: it is queued);
    ``counts``: each busy job's queued and running runs."""
    if not busy:
        return None
    waiting, running = counts.get(fire.job_id, (0, 0))
    return overlap_refusal(RunPolicy.of(fire.policy), waiting, running)


def fire_rows(fire: Fire, overlap: str | None, now: datetime) -> list[dict[str, Any]]:
    """The latest due time runs (or is missed, with why); the earlier ones are missed, or run
    too (``misfire_policy``: ``coalesce``, ``run_all``, ``skip``)."""
    *earlier, latest = fire.run_times
    grace = timedelta(seconds=fire.grace_seconds)
    misfire = RunPolicy.of(fire.policy).misfire_policy if fire.policy else COALESCE
    late = [moment for moment in earlier if now - moment > grace]
    within = [moment for moment in earlier if now - moment <= grace]
    rows = []
    copied = fire.copied
    if late:
        reason = f"missed by more than the misfire grace time of {grace}"
        rows.append(missed_row(fire.job_id, late, reason, **copied))
    if within and misfire == RUN_ALL and not overlap:
        rows.extend(run_row(fire.job_id, moment, QUEUED, **copied) for moment in within)
    elif within:
        reason = f"coalesced into the run scheduled for {latest.isoformat()}"
        if misfire == SKIP:
            reason = "misfired, and skipped (misfire_policy: skip)"
        rows.append(missed_row(fire.job_id, within, reason, **copied))
    if overlap:
        rows.append(missed_row(fire.job_id, [latest], overlap, **copied))
    elif now - latest > grace:
        reason = f"late by {now - latest}, beyond the misfire grace time of {fire.grace_seconds} s"
        rows.append(missed_row(fire.job_id, [latest], reason, **copied))
    elif misfire == SKIP and now - latest > ON_TIME:
        reason = f"late by {now - latest}, and skipped (misfire_policy: skip)"
        rows.append(missed_row(fire.job_id, [latest], reason, **copied))
    else:
        rows.append(run_row(fire.job_id, latest, QUEUED, **copied))
    return rows
