"""The workflow engine alone: finished tries in, tries to start out, at a fixed ``now``.

No database and no waiting: every time is given. End-to-end runs are in test_workflows.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from f8a_jobs.core.policy import INTERRUPTIONS
from f8a_jobs.core.states import RunStatus, TaskState
from f8a_jobs.services.workflows.engine import WorkflowRun
from f8a_jobs.services.workflows.expand import Node
from f8a_jobs.services.workflows.results import resolve_results
from f8a_jobs.services.workflows.tries import Start, TryClaim, TryOutcome

NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
CLAIM = TryClaim("me", 7)


def node(name: str, *depends_on: str, **fields: object) -> Node:
    return Node(name, "job", handler=str(fields.pop("handler", "Noop")), depends_on=depends_on, **fields)  # type: ignore[arg-type]


def workflow(*nodes: Node, max_concurrent: int = 10, deadline: datetime | None = None) -> WorkflowRun:
    run = WorkflowRun("run", "job", NOW, list(nodes), max_concurrent, deadline, timeout=60.0)
    run.begin(NOW)
    return run


def admit(run: WorkflowRun, at: datetime = NOW, room: int = 100) -> list[str]:
    return [start.task for start in run.admit(room, at, resolve_results, CLAIM)]


def started(run: WorkflowRun, at: datetime = NOW) -> list[Start]:
    return run.admit(100, at, resolve_results, CLAIM)


def end(run: WorkflowRun, task: str, state: str = TaskState.SUCCEEDED, at: datetime = NOW, part: int = -1,
        result: object = None, error: str | None = None) -> bool:
    tries = run.units[(task, part)].tries
    outcome = TryOutcome("run", task, part, tries, state, at, at, True, result, error)
    return run.finished(outcome, at)


def states(run: WorkflowRun) -> dict[str, str]:
    return {name: unit.state for (name, part), unit in run.units.items() if part == -1}


def test_a_diamond_runs_each_task_once_its_upstream_is_done():
    run = workflow(node("a"), node("b", "a"), node("c", "a"), node("d", "b", "c"))
    assert admit(run) == ["a"]
    assert end(run, "a")
    assert sorted(admit(run)) == ["b", "c"]
    assert end(run, "b")
    assert admit(run) == []  # d waits for c
    assert end(run, "c")
    assert admit(run) == ["d"]
    assert not run.over
    assert end(run, "d")
    assert run.over and run.status() == (RunStatus.SUCCEEDED, None)
    assert run.summary() == {TaskState.SUCCEEDED: 4}


def test_a_started_try_carries_the_claim_and_is_a_change_to_write():
    run = workflow(node("a"))
    inserted, _ = run.take_dirty()
    assert [unit.task for unit in inserted] == ["a"]
    (start,) = started(run)
    unit = run.units[("a", -1)]
    assert (unit.state, unit.tries, unit.owner, unit.epoch, unit.heartbeat_at) == (TaskState.RUNNING, 1, "me", 7, NOW)
    assert (start.try_number, start.task, start.run_id) == (1, "a", "run")
    _, updated = run.take_dirty()
    assert updated == [unit]


def test_at_most_max_concurrent_tasks_run_and_the_others_wait_in_the_order_they_became_ready():
    run = workflow(node("a"), node("b"), node("c"), max_concurrent=2)
    assert admit(run) == ["a", "b"]
    assert end(run, "b")
    assert admit(run) == ["c"]


def test_a_failed_try_waits_its_delay_growing_by_the_backoff_then_is_ready_at_the_back():
    run = workflow(node("flaky", tries=3, retry_delay=10.0, retry_backoff=2.0), node("other"))
    assert admit(run, room=1) == ["flaky"]
    assert end(run, "flaky", TaskState.FAILED, error="boom")
    unit = run.units[("flaky", -1)]
    assert (unit.state, unit.ready_at) == (TaskState.RETRYING, NOW + timedelta(seconds=10))
    assert admit(run) == ["other"]  # the retry holds no slot while it waits
    run.tick(NOW + timedelta(seconds=9.9))
    assert admit(run) == []
    second = NOW + timedelta(seconds=10)
    run.tick(second)
    assert admit(run, second) == ["flaky"]
    assert end(run, "flaky", TaskState.FAILED, at=second, error="boom")
    assert run.units[("flaky", -1)].ready_at == second + timedelta(seconds=20)


def test_a_task_failing_its_last_try_fails_the_run_and_what_has_not_started_is_upstream_failed():
    run = workflow(node("a"), node("b", "a"), node("c"))
    assert admit(run) == ["a", "c"]
    assert end(run, "a", TaskState.FAILED, error="no disk")
    assert states(run) == {"a": "failed", "b": "upstream_failed", "c": "running"}
    assert not run.over  # c goes on
    assert end(run, "c")
    assert run.status() == (RunStatus.FAILED, "task 'a' failed: no disk")


def test_a_task_that_may_fail_lets_its_dependents_run():
    run = workflow(node("a", fail_workflow_on_error=False), node("b", "a"))
    admit(run)
    end(run, "a", TaskState.FAILED, error="ignored")
    assert admit(run) == ["b"]
    end(run, "b")
    assert run.status() == (RunStatus.SUCCEEDED, None)


def test_a_try_past_its_timeout_fails_and_its_late_outcome_is_ignored():
    run = workflow(node("slow", timeout=5.0))
    admit(run)
    run.tick(NOW + timedelta(seconds=4.9))
    assert run.units[("slow", -1)].state == TaskState.RUNNING
    run.tick(NOW + timedelta(seconds=5))
    assert run.units[("slow", -1)].error == "timed out: try 1 ran longer than the task's timeout of 5 s"
    assert not end(run, "slow", at=NOW + timedelta(seconds=6))  # stale: the try is over


def test_the_run_past_its_deadline_fails_running_tries_too():
    run = workflow(node("a"), node("b", "a"), deadline=NOW + timedelta(seconds=60))
    admit(run)
    assert run.next_timer() == NOW + timedelta(seconds=60)
    run.tick(NOW + timedelta(seconds=60))
    assert states(run) == {"a": "failed", "b": "upstream_failed"}
    assert run.over and run.status()[1] == "the run exceeded the job's timeout of 60 s (timeout)"


def test_for_each_makes_one_part_per_item_and_the_task_takes_their_results():
    run = workflow(node("fan", for_each=[{"n": 1}, {"n": 2}, {"n": 3}]), node("sum", "fan"))
    parts = started(run)  # the task splits when it starts: its parts are what runs
    assert [(s.part, s.kwargs, s.num_parts) for s in parts] == [(0, {"n": 1}, 3), (1, {"n": 2}, 3), (2, {"n": 3}, 3)]
    for index in range(3):
        end(run, "fan", part=index, result=index * 10)
    assert run.result_of("fan") == [0, 10, 20]
    assert admit(run) == ["sum"]


def test_a_failed_part_fails_its_task_naming_the_part():
    run = workflow(node("fan", for_each=[{"n": 1}, {"n": 2}]))
    started(run)
    end(run, "fan", part=0)
    end(run, "fan", TaskState.FAILED, part=1, error="bad item")
    assert run.units[("fan", -1)].error == "1 of 2 parts failed; part 1: bad item"


def test_results_pass_on_and_a_missing_key_fails_the_try_saying_which():
    run = workflow(node("a"), node("b", "a", kwargs={"rows": {"$result": "a.rows"}}),
                   node("c", "a", kwargs={"x": {"$result": "a.nothing"}}))
    admit(run)
    end(run, "a", result={"rows": [1, 2]})
    (start,) = started(run)
    assert (start.task, start.kwargs) == ("b", {"rows": [1, 2]})
    assert run.units[("c", -1)].state == TaskState.FAILED
    assert "the result of 'a' has no 'nothing'" in (run.units[("c", -1)].error or "")


def test_cancel_ends_what_has_not_started_and_lets_running_tries_finish():
    run = workflow(node("a"), node("b", "a"))
    admit(run)
    run.cancel(NOW)
    assert states(run) == {"a": "running", "b": "cancelled"}
    end(run, "a")
    assert run.status() == (RunStatus.CANCELLED, "the run was cancelled")


def test_an_interrupted_try_runs_again_beyond_its_tries_a_few_times_then_fails():
    run = workflow(node("a"))
    for attempt in range(1, INTERRUPTIONS + 1):
        assert admit(run) == ["a"]
        run.interrupted(("a", -1), "its process died", NOW)
        assert run.units[("a", -1)].state == TaskState.READY, attempt
    admit(run)
    run.interrupted(("a", -1), "its process died", NOW)
    assert run.units[("a", -1)].state == TaskState.FAILED


def test_a_run_restored_from_its_rows_goes_on_where_it_was():
    nodes = [node("a"), node("b", "a"), node("c", "a"), node("d", "b", "c")]
    first = workflow(*nodes)
    admit(first)
    end(first, "a", result=1)
    admit(first, room=1)  # b runs; c is ready and waits
    rows = [unit for unit in first.units.values()]
    again = WorkflowRun("run", "job", NOW, nodes, 10, None)
    again.restore(rows, NOW)
    assert again.running == {("b", -1)}
    assert admit(again) == ["c"]
    assert end(again, "b") and end(again, "c")
    assert admit(again) == ["d"]
