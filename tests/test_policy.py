"""Run policies alone: the one retry formula, what a job stores, and errors naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.policy import DEFAULT, RunPolicy, parse_policy
from f8a_jobs.services.workflows.expand import Node

FAILED_AT = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


def test_each_retry_waits_the_delay_times_the_backoff_per_try_until_the_last():
    policy = RunPolicy(tries=3, retry_delay=2.0, retry_backoff=3.0)
    assert policy.retry_at(1, FAILED_AT) == FAILED_AT + timedelta(seconds=2)
    assert policy.retry_at(2, FAILED_AT) == FAILED_AT + timedelta(seconds=6)
    assert policy.retry_at(3, FAILED_AT) is None


def test_a_workflow_task_retries_by_the_same_formula():
    task = Node("t", "job", handler="Noop", tries=2, retry_delay=0.5, retry_backoff=4.0)
    assert task.retry_at(1, FAILED_AT) == FAILED_AT + timedelta(seconds=0.5)
    assert task.retry_at(2, FAILED_AT) is None


def test_a_job_stores_only_what_differs_from_the_defaults():
    assert RunPolicy.of(None) is DEFAULT and DEFAULT.json() is None
    policy = parse_policy({"tries": 3, "timeout": "10 minutes", "overlap": "allow", "max_parallel": 4}, False)
    assert policy.json() == {"tries": 3, "timeout": 600.0, "overlap": "allow", "max_parallel": 4}
    assert RunPolicy.of(policy.json()) == policy


@pytest.mark.parametrize(
    ("data", "workflow", "field"),
    [
        ({"tries": 0}, False, "tries"),
        ({"retry_delay": "often"}, False, "retry_delay"),
        ({"retry_backoff": 101}, False, "retry_backoff"),
        ({"overlap": "sometimes"}, False, "overlap"),
        ({"max_parallel": 3}, False, "max_parallel"),
        ({"misfire_policy": "later"}, False, "misfire_policy"),
        ({"pause_on_failure": "yes"}, False, "pause_on_failure"),
        ({"queue": "no spaces"}, False, "queue"),
        ({"tries": 2}, True, "tries"),
    ],
)
def test_a_bad_policy_field_is_refused_by_name(data, workflow, field):
    with pytest.raises(InvalidInput) as refused:
        parse_policy(data, workflow)
    assert refused.value.field == field
