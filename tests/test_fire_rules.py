"""What a due job's fire becomes, alone and at a fixed ``now``: which slots run and which are
recorded missed, and why (misfire policy, grace time, overlap)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from f8a_jobs.core.states import RunStatus
from f8a_jobs.services.runs import Fire
from f8a_jobs.services.runs.fire_rules import fire_rows, overlap_of

NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
GRACE = 3600


def slots(*minutes_ago: float) -> tuple[datetime, ...]:
    return tuple(NOW - timedelta(minutes=minutes) for minutes in minutes_ago)


def rows(fire: Fire, overlap: str | None = None) -> list[tuple[str, datetime, int | None, str | None]]:
    return [
        (row["status"], row["scheduled_for"], row["missed_count"], row["error"])
        for row in fire_rows(fire, overlap, NOW)
    ]


def test_a_slot_on_time_is_queued():
    assert rows(Fire("job", slots(0), GRACE)) == [(RunStatus.QUEUED, NOW, None, None)]


def test_missed_slots_within_the_grace_time_coalesce_into_the_latest():
    earlier, middle, latest = slots(30, 20, 10)
    assert rows(Fire("job", (earlier, middle, latest), GRACE)) == [
        (
            RunStatus.MISSED,
            earlier,
            2,
            f"coalesced into the run scheduled for {latest.isoformat()} "
            f"(2 runs from {earlier.isoformat()} to {middle.isoformat()})",
        ),
        (RunStatus.QUEUED, latest, None, None),
    ]


def test_run_all_queues_every_slot_within_the_grace_time_oldest_first():
    fire = Fire("job", slots(30, 20, 10), GRACE, policy={"misfire_policy": "run_all"})
    assert [(status, when) for status, when, _, _ in rows(fire)] == [
        (RunStatus.QUEUED, when) for when in slots(30, 20, 10)
    ]


def test_slots_beyond_the_grace_time_are_missed_saying_so():
    fire = Fire("job", slots(120, 90), GRACE)
    ((status, _, count, error), (last_status, _, _, last_error)) = rows(fire)
    assert (status, count, error) == (RunStatus.MISSED, 1, "missed by more than the misfire grace time of 1:00:00")
    assert last_status == RunStatus.MISSED
    assert last_error == "late by 1:30:00, beyond the misfire grace time of 3600 s"


def test_skip_runs_nothing_late_not_even_the_latest():
    fire = Fire("job", slots(20, 2), GRACE, policy={"misfire_policy": "skip"})
    assert [(status, error) for status, _, _, error in rows(fire)] == [
        (RunStatus.MISSED, "misfired, and skipped (misfire_policy: skip)"),
        (RunStatus.MISSED, "late by 0:02:00, and skipped (misfire_policy: skip)"),
    ]
    on_time = Fire("job", (NOW - timedelta(milliseconds=500),), GRACE, policy={"misfire_policy": "skip"})
    assert rows(on_time)[0][0] == RunStatus.QUEUED


@pytest.mark.parametrize(
    ("policy", "counts", "refusal"),
    [
        (None, (0, 1), "the previous run was still running"),
        ({"overlap": "buffer_one"}, (0, 1), None),
        ({"overlap": "buffer_one"}, (1, 1), "a run was waiting already (overlap: buffer_one)"),
        ({"overlap": "allow", "max_parallel": 2}, (0, 1), None),
        ({"overlap": "allow", "max_parallel": 2}, (1, 1), "2 runs were going already (overlap: allow, max_parallel)"),
    ],
)
def test_a_slot_due_while_runs_go_on_follows_the_overlap_policy(policy, counts, refusal):
    fire = Fire("job", slots(0), GRACE, policy=policy)
    assert overlap_of(fire, True, {"job": counts}) == refusal
    assert overlap_of(fire, False, {"job": counts}) is None  # nothing goes on: no overlap
    status, _, _, error = rows(fire, overlap_of(fire, True, {"job": counts}))[-1]
    assert (status, error) == ((RunStatus.MISSED, refusal) if refusal else (RunStatus.QUEUED, None))
