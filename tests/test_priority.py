"""Priority (Datatailr's LOW/NORMAL/HIGH): when more runs or tries are due than the executors
can start, higher starts first, then the earlier slot; a backlog of low runs delays a high one
by one claim at most; backfills run below ``low`` unless asked. Labels and priority are copied
onto runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.execution.firing import FireBatch
from f8a_jobs.execution.jobstore import COLUMNS
from f8a_jobs.services import jobs, runs
from f8a_jobs.services.runs import Claimant, Fire
from f8a_jobs.services.runs.backfill import backfill
from f8a_jobs.services.workflows.engine import WorkflowRun
from f8a_jobs.services.workflows.results import resolve_results
from f8a_jobs.services.workflows.spec import parse_workflow
from f8a_jobs.storage.tables import jobs as jobs_table
from tests.test_engine import CLAIM, NOW, end, node
from tests.test_lifecycle import add, claim, runs_of, term


def queued_now(engine, job_id):
    return runs.request_run(engine, job_id)["run_id"]


def test_claims_take_the_highest_priority_first_then_the_earliest_slot(engine):
    later = (utcnow() + timedelta(hours=1)).isoformat()
    for job_id, priority in (("low", "low"), ("normal", None), ("high", "HIGH")):
        add(engine, job_id, when=later, **({"priority": priority} if priority else {}))
    epoch = term(engine)
    backlog = [queued_now(engine, "low") for _ in range(5)]  # queued first: the oldest
    normal = queued_now(engine, "normal")
    high = queued_now(engine, "high")
    first = claim(engine, epoch, limit=2)
    assert [run.run_id for run in first] == [high, normal]  # one claim: ahead of the backlog
    rest = claim(engine, epoch, limit=10)
    assert [run.run_id for run in rest] == backlog  # oldest first within one priority


def test_a_high_run_queued_behind_a_backlog_starts_at_the_next_claim(engine):
    later = (utcnow() + timedelta(hours=1)).isoformat()
    add(engine, "low", when=later, priority="low")
    add(engine, "high", when=later, priority="high")
    epoch = term(engine)
    for _ in range(20):
        queued_now(engine, "low")
    claim(engine, epoch, limit=3)  # the executor is busy with three of them
    high = queued_now(engine, "high")
    [taken] = claim(engine, epoch, limit=1)
    assert taken.run_id == high


def test_runs_copy_their_jobs_labels_and_priority(engine):
    later = (utcnow() + timedelta(hours=1)).isoformat()
    add(engine, "etl", when=later, labels=["nightly", "finance"], priority="high")
    epoch = term(engine)
    batch = FireBatch(engine, epoch, None, lambda: None)  # as a scheduling pass fires it
    with engine.connect() as connection:
        row = connection.execute(select(*COLUMNS).where(jobs_table.c.job_id == "etl")).one()
    batch.read(row)
    batch.fire("etl", [utcnow()], 3600)
    batch.advance("etl", row.revision, None)
    batch.flush()
    queued_now(engine, "etl")
    shown = runs_of(engine, "etl")
    assert [(run["labels"], run["priority"]) for run in shown] == [
        (["nightly", "finance"], "high")
    ] * 2
    assert jobs.get_job(engine, "etl")["priority"] == "high"


def test_backfills_run_below_low_unless_the_request_says(engine):
    add(engine, "daily", periodically="1 day", priority="low")
    epoch = term(engine)
    start = (utcnow() - timedelta(days=3)).isoformat()
    end = utcnow().isoformat()
    backfill(engine, "daily", {"start": start, "end": end})
    live = queued_now(engine, "daily")
    [first] = claim(engine, epoch, limit=1)
    assert first.run_id == live  # the live run before the older backfill slots
    assert {run["priority"] for run in runs_of(engine, "daily") if run["trigger"] == "backfill"} == {
        "lowest"
    }
    add(engine, "urgent", periodically="1 day")
    backfill(engine, "urgent", {"start": start, "end": end, "priority": "high"})
    assert {run["priority"] for run in runs_of(engine, "urgent")} == {"high"}
    with pytest.raises(InvalidInput, match="priority"):
        backfill(engine, "urgent", {"start": start, "end": end, "priority": "urgent"})


@pytest.mark.parametrize("value", ["urgent", 3, ""])
def test_a_bad_priority_is_a_400_naming_the_field(value):
    with pytest.raises(InvalidInput, match="^priority:"):
        jobs.parse_job({"handler": "Noop", "when": "2099-01-01T00:00:00Z", "priority": value})
    tasks = [{"name": "a", "handler": "Noop", "priority": value}]
    with pytest.raises(InvalidInput, match=r"^tasks\[0\]\.priority:"):
        parse_workflow(tasks, None, None)


def test_ready_tries_start_by_their_tasks_priority():
    nodes = [
        node("first"),
        node("low", "first", priority=1),
        node("normal", "first"),
        node("high", "first", priority=3),
    ]
    run = WorkflowRun("run", "job", NOW, nodes, 10, None)
    run.begin(NOW)
    [start] = run.admit(100, NOW, resolve_results, CLAIM)
    end(run, start.task)
    order = [start.task for start in run.admit(1, NOW, resolve_results, CLAIM)]
    order += [start.task for start in run.admit(10, NOW, resolve_results, CLAIM)]
    assert order == ["high", "normal", "low"]


def test_a_workflow_tasks_priority_is_stored_by_name():
    workflow = parse_workflow([{"name": "a", "handler": "Noop", "priority": "High"}], None, None)
    assert workflow.json()["tasks"] == [{"name": "a", "handler": "Noop", "priority": "high"}]


def test_a_fire_does_not_start_a_lower_run_before_a_queued_higher_one(engine):
    later = (utcnow() + timedelta(hours=1)).isoformat()
    add(engine, "high", when=later, priority="high")
    add(engine, "low", when=later, priority="low")
    epoch = term(engine)
    high = queued_now(engine, "high")  # queued, not yet claimed
    fire = Fire("low", (utcnow(),), 3600, "Noop", {}, None, None, 1)
    with engine.begin() as connection:
        queued, claimed = runs.queue_fires(
            connection, epoch, [fire], utcnow(), claimant=Claimant("me", 5)
        )
        assert queued == 1
    assert claimed == []  # the thread is left for the high run, queued before
    [first, second] = claim(engine, epoch, limit=2)
    assert first.run_id == high and second.job_id == "low"
