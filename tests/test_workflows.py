"""Workflows in process, on both backends: the engine through a real FiringScheduler, with
every task transition in the database. Timing is read from events the handlers record."""

import pytest
from sqlalchemy import select

from f8a_jobs.core.errors import InvalidInput, JobInUse
from f8a_jobs.services import jobs, runs
from f8a_jobs.services.workflows import queries, retry
from f8a_jobs.services.workflows.dry_run import dry_run
from f8a_jobs.storage.tables import job_runs
from tests import handlers as test_handlers
from tests.conftest import poll

VDK = [
    {"job_name": f"job{n}", "team_name": "team-awesome", "fail_meta_job_on_error": True,
     "arguments": {}, "depends_on": deps}
    for n, deps in [(1, []), (2, ["job1"]), (3, ["job1"]), (4, ["job1"]), (5, ["job3"]), (6, ["job3"])]
]


@pytest.fixture
def scheduler(started_scheduler):
    return started_scheduler


def add(engine, **fields):
    return jobs.create_job(engine, jobs.parse_job({"state": "paused", **fields}))


def run_to_end(engine, scheduler, job_id, timeout=20.0):
    run_id = runs.request_run(engine, job_id)["run_id"]
    scheduler.wakeup()
    return poll(lambda: _ended(engine, job_id, run_id), timeout=timeout)


def _ended(engine, job_id, run_id):
    run = queries.get_run(engine, job_id, run_id)
    return run if run["status"] in ("succeeded", "failed", "cancelled") else None


def tasks_of(run):
    return {task["name"]: task for task in run["tasks"]}


def spans():
    """task -> (start, end) from the Record handler's events."""
    found = {}
    for what, task, moment in test_handlers.events:
        start, end = found.get(task, (None, None))
        found[task] = (moment, end) if what == "start" else (start, moment)
    return found


def test_the_vdk_example_runs_in_order_within_the_concurrency_limit(engine, scheduler):
    for n in range(1, 7):
        add(engine, job_id=f"job{n}", handler="Record", kwargs={"seconds": 0.2})
    add(engine, job_id="meta", tasks=VDK, max_concurrent=2)
    run = run_to_end(engine, scheduler, "meta")
    assert run["status"] == "succeeded", run
    tasks = tasks_of(run)
    assert all(task["state"] == "succeeded" and task["team_name"] == "team-awesome" for task in tasks.values())
    times = spans()
    assert times["job1"][1] <= min(times[name][0] for name in ("job2", "job3", "job4"))
    assert times["job3"][1] <= min(times["job5"][0], times["job6"][0])
    # jobs 5 and 6 do not wait for 2 and 4: one of them starts before the slower of 2 and 4 ends
    assert min(times["job5"][0], times["job6"][0]) < max(times["job2"][1], times["job4"][1])
    moments = sorted((t, +1 if what == "start" else -1) for what, _, t in test_handlers.events)
    running = peak = 0
    for _, step in moments:
        running += step
        peak = max(peak, running)
    assert peak == 2  # the limit delays, and never cancels: all six ran
    assert tasks["job2"]["result"] == {"task": "job2"}


def test_results_flow_to_dependents_and_for_each_over_a_list_and_a_result(engine, scheduler):
    add(engine, job_id="squares", tasks=[
        {"name": "numbers", "handler": "Record",
         "kwargs": {"values": [{"value": 1}, {"value": 2}, {"value": 3}]}},
        {"name": "square", "handler": "Square", "depends_on": ["numbers"],
         "for_each": {"$result": "numbers.values"}},
        {"name": "fixed", "handler": "Square", "for_each": [{"value": 4}, {"value": 5}]},
        {"name": "total", "handler": "Total", "depends_on": ["square", "fixed"],
         "kwargs": {"values": {"$result": "square"}}},
    ])
    run = run_to_end(engine, scheduler, "squares")
    tasks = tasks_of(run)
    assert run["status"] == "succeeded", run
    assert tasks["square"]["result"] == [1, 4, 9] and tasks["total"]["result"] == 14
    assert tasks["fixed"]["result"] == [16, 25]
    assert [part["result"] for part in tasks["fixed"]["parts"]] == [16, 25]


def test_fail_workflow_on_error_true_fails_the_run_and_stops_the_rest(engine, scheduler):
    add(engine, job_id="breaks", tasks=[
        {"name": "bad", "handler": "Fail", "kwargs": {"message": "kaput"}},
        {"name": "after", "handler": "Record", "depends_on": ["bad"]},
        {"name": "slow", "handler": "Record", "kwargs": {"seconds": 0.3}},
    ])
    run = run_to_end(engine, scheduler, "breaks")
    tasks = tasks_of(run)
    assert run["status"] == "failed" and "task 'bad' failed: RuntimeError: kaput" in run["error"]
    assert tasks["bad"]["state"] == "failed" and tasks["after"]["state"] == "upstream_failed"
    assert tasks["slow"]["state"] == "succeeded"  # running ones finish


def test_fail_workflow_on_error_false_goes_on(engine, scheduler):
    add(engine, job_id="tolerant", tasks=[
        {"name": "bad", "handler": "Fail", "kwargs": {"message": "kaput"}, "fail_workflow_on_error": False},
        {"name": "after", "handler": "Record", "depends_on": ["bad"]},
    ])
    run = run_to_end(engine, scheduler, "tolerant")
    tasks = tasks_of(run)
    assert run["status"] == "succeeded"
    assert tasks["bad"]["state"] == "failed" and tasks["after"]["state"] == "succeeded"


def test_retries_do_not_block_and_interleave(engine, scheduler):
    add(engine, job_id="flaky", max_concurrent=3, tasks=[
        {"name": name, "handler": "Flaky", "kwargs": {"key": name, "failures": 2},
         "tries": 3, "retry_delay": 0.5}
        for name in ("a", "b", "c")
    ])
    run = run_to_end(engine, scheduler, "flaky")
    assert run["status"] == "succeeded"
    assert {task["name"]: task["tries"] for task in run["tasks"]} == {"a": 3, "b": 3, "c": 3}
    tries = [(key, moment) for what, key, moment in test_handlers.events if what == "try"]
    first = {key: [m for k, m in tries if k == key] for key in "abc"}
    # every task's second try comes after every task's first: round robin, not one by one
    assert max(times[0] for times in first.values()) < min(times[1] for times in first.values())
    elapsed = max(m for _, m in tries) - min(m for _, m in tries)
    assert 1.0 <= elapsed < 2.0  # two delays of 0.5 s overlapped, not six in a row


def test_retry_backoff_multiplies_the_delay(engine, scheduler):
    add(engine, job_id="backoff", tasks=[
        {"name": "t", "handler": "Flaky", "kwargs": {"key": "t", "failures": 2}, "tries": 3,
         "retry_delay": 0.2, "retry_backoff": 3},
    ])
    run = run_to_end(engine, scheduler, "backoff")
    assert run["status"] == "succeeded" and run["tasks"][0]["tries"] == 3
    first, second, third = [moment for what, _, moment in test_handlers.events if what == "try"]
    assert second - first >= 0.2 and third - second >= 0.6  # 0.2 s, then 0.2 × 3
    assert third - second > 2 * (second - first)


def test_a_run_past_the_jobs_timeout_fails_and_starts_nothing_more(engine, scheduler):
    add(engine, job_id="late", timeout=0.3, tasks=[
        {"name": "slow", "handler": "Record", "kwargs": {"seconds": 1}},
        {"name": "after", "handler": "Record", "depends_on": ["slow"]},
    ])
    run = run_to_end(engine, scheduler, "late")
    states = {task["name"]: task["state"] for task in run["tasks"]}
    assert run["status"] == "failed" and "the job's timeout of 0.3 s" in run["error"]
    assert states["slow"] == "failed" and states["after"] != "succeeded"
    poll(lambda: ("end", "slow") in {(what, task) for what, task, _ in test_handlers.events})
    assert ("start", "after") not in {(what, task) for what, task, _ in test_handlers.events}


def test_a_failing_cleanup_is_reported_and_the_others_still_run(engine, scheduler):
    add(engine, job_id="undo", tasks=[
        {"name": "first", "handler": "Idempotent", "kwargs": {"mark": "a"}},
        {"name": "second", "handler": "Idempotent", "kwargs": {"mark": "b", "cleanup_fails": True},
         "depends_on": ["first"]},
    ])
    run = run_to_end(engine, scheduler, "undo")
    assert "cleanup of task 'second' failed: RuntimeError: cannot undo b" in run["error"]
    cleaned = [mark for what, mark, _ in test_handlers.events if what == "cleanup"]
    assert cleaned == ["b", "a"]


def test_more_for_each_items_than_allowed_fail_the_task(engine, scheduler, monkeypatch):
    monkeypatch.setattr(scheduler.workflows, "max_parts", 3)
    add(engine, job_id="wide", tasks=[
        {"name": "fan", "handler": "Square", "for_each": [{"value": n} for n in range(4)]},
    ])
    run = run_to_end(engine, scheduler, "wide")
    assert run["status"] == "failed"
    assert "more than 3 items (F8A_JOBS_FOR_EACH_MAX_PARTS)" in run["tasks"][0]["error"]


def test_check_run_recheck_and_cleanup_in_reverse(engine, scheduler):
    test_handlers.marks.add("already")
    add(engine, job_id="idem", tasks=[
        {"name": "done", "handler": "Idempotent", "kwargs": {"mark": "already"}},
        {"name": "first", "handler": "Idempotent", "kwargs": {"mark": "one"}, "depends_on": ["done"]},
        {"name": "second", "handler": "Idempotent", "kwargs": {"mark": "two"}, "depends_on": ["first"]},
    ])
    run = run_to_end(engine, scheduler, "idem")
    states = {task["name"]: task["state"] for task in run["tasks"]}
    assert states == {"done": "satisfied", "first": "succeeded", "second": "succeeded"}
    done = [(what, mark) for what, mark, _ in test_handlers.events]
    assert done == [("execute", "one"), ("execute", "two"), ("cleanup", "two"), ("cleanup", "one")]


def test_a_satisfied_task_passes_on_what_its_check_found(engine, scheduler):
    add(engine, job_id="found", tasks=[
        {"name": "row", "handler": "Found", "kwargs": {"found": {"id": 7}}},
        {"name": "yes", "handler": "Found", "kwargs": {"found": True}},
        {"name": "each", "handler": "Found", "for_each": [{"found": "a"}, {"found": None}]},
        {"name": "all", "handler": "Echo", "depends_on": ["row", "yes", "each"],
         "kwargs": {"value": [{"$result": "row.id"}, {"$result": "yes"}, {"$result": "each"}]}},
    ])
    run = run_to_end(engine, scheduler, "found")
    tasks = tasks_of(run)
    assert [part["state"] for part in tasks["each"]["parts"]] == ["satisfied", "satisfied"]
    assert tasks["row"]["state"] == tasks["yes"]["state"] == "satisfied"
    assert tasks["all"]["result"] == [7, None, ["a", None]]  # a bare True passes on nothing
    assert not test_handlers.events  # nothing executed


def test_a_dry_run_checks_each_part_with_the_results_checks_found(engine, monkeypatch):
    monkeypatch.setattr(test_handlers, "marks", {"a"})
    add(engine, job_id="dry", tasks=[
        {"name": "each", "handler": "Idempotent", "for_each": [{"mark": "a"}, {"mark": "b"}]},
        {"name": "found", "handler": "Found", "kwargs": {"found": [{"mark": "a"}]}},
        {"name": "again", "handler": "Idempotent", "for_each": {"$result": "found"},
         "depends_on": ["found"]},
        {"name": "later", "handler": "Idempotent", "kwargs": {"mark": "a"}, "depends_on": ["each"]},
    ])
    job = jobs.get_job(engine, "dry")
    workflow = {key: job[key] for key in jobs.WORKFLOW_KEYS}
    report = {task["name"]: task for task in dry_run(engine, {"job_id": "dry", "workflow": workflow})}
    assert report["each"]["parts"] == [
        {"part": 0, "item": {"mark": "a"}, "would": "satisfied", "error": None},
        {"part": 1, "item": {"mark": "b"}, "would": "would_run", "error": "check returned False"},
    ]
    assert report["each"]["error"] == "1 of 2 parts would run; part 1: check returned False"
    assert report["found"]["would"] == "satisfied" and "parts" not in report["found"]
    assert report["again"]["would"] == "satisfied"  # its items: what found's check found
    assert report["again"]["parts"] == [{"part": 0, "item": {"mark": "a"}, "would": "satisfied", "error": None}]
    assert (report["later"]["would"], report["later"]["error"]) == ("not_checked", None)


def test_a_failing_recheck_fails_the_try(engine, scheduler):
    add(engine, job_id="broken", tasks=[
        {"name": "t", "handler": "Idempotent", "kwargs": {"mark": "x", "broken": True}, "tries": 2,
         "retry_delay": 0.1},
    ])
    run = run_to_end(engine, scheduler, "broken")
    task = run["tasks"][0]
    assert run["status"] == "failed" and task["tries"] == 2
    assert "the recheck after execute failed" in task["error"]


def test_a_task_past_its_timeout_fails_naming_the_limit(engine, scheduler):
    add(engine, job_id="slow", tasks=[
        {"name": "t", "handler": "Record", "kwargs": {"seconds": 2}, "timeout": 0.3},
    ])
    run = run_to_end(engine, scheduler, "slow")
    assert run["status"] == "failed"
    assert "longer than the task's timeout of 0.3 s" in run["tasks"][0]["error"]


def test_jobs_inside_jobs_are_inlined_twice_and_nested(engine, scheduler):
    add(engine, job_id="leaf", handler="Record", kwargs={"x": 1})
    add(engine, job_id="inner", tasks=[{"name": "a", "job": "leaf"}, {"name": "b", "handler": "Record", "depends_on": ["a"]}])
    add(engine, job_id="outer", tasks=[
        {"name": "start", "handler": "Record"},
        {"name": "one", "job": "inner", "depends_on": ["start"]},
        {"name": "two", "job": "inner", "depends_on": ["start"]},
        {"name": "end", "handler": "Record", "depends_on": ["one", "two"]},
    ])
    run = run_to_end(engine, scheduler, "outer")
    assert run["status"] == "succeeded"
    names = [task["name"] for task in run["tasks"]]
    assert names == ["start", "one/a", "one/b", "one", "two/a", "two/b", "two", "end"]
    assert tasks_of(run)["one/a"]["result"] == {"task": "one/a", "x": 1}
    times = spans()
    assert times["one/b"][1] <= times["end"][0] and times["two/b"][1] <= times["end"][0]


def test_a_job_that_contains_itself_is_refused_naming_the_chain(engine):
    add(engine, job_id="b", handler="Noop")
    add(engine, job_id="a", tasks=[{"job": "b"}])
    with pytest.raises(InvalidInput, match="self → self"):
        add(engine, job_id="self", tasks=[{"job": "self"}])
    looping = jobs.parse_job({"job_id": "b", "tasks": [{"job": "a"}]}, source="b.yaml")
    with pytest.raises(InvalidInput, match="b → a → b"), engine.begin() as connection:
        jobs.replace_job(connection, looping)
    assert jobs.get_job(engine, "b")["handler"] == "Noop"  # unchanged
    with pytest.raises(JobInUse, match="'a'"):
        jobs.delete_job(engine, "b")


def test_retry_reruns_only_what_failed(engine, scheduler):
    add(engine, job_id="again", tasks=[
        {"name": "ok", "handler": "Record"},
        {"name": "flaky", "handler": "Flaky", "kwargs": {"key": "f", "failures": 1}, "depends_on": ["ok"]},
        {"name": "last", "handler": "Record", "depends_on": ["flaky"]},
    ])
    run = run_to_end(engine, scheduler, "again")
    assert run["status"] == "failed" and tasks_of(run)["last"]["state"] == "upstream_failed"
    first = run
    retry.retry_run(engine, "again", run["run_id"])
    scheduler.wakeup()
    run = poll(lambda: _ended(engine, "again", run["run_id"]))
    assert run["status"] == "succeeded"
    assert [what for what, task, _ in test_handlers.events if task == "ok"] == ["start", "end"]
    [attempt] = run["attempts"]  # the failed attempt, as it ended
    assert attempt["attempt"] == 1 and attempt["status"] == "failed"
    assert (attempt["started_at"], attempt["finished_at"]) == (first["started_at"], first["finished_at"])
    assert attempt["retried_with"] == "snapshot"
    history = {task["name"]: task for task in attempt["tasks"]}
    assert set(history) == {"flaky", "last"}  # what the retry ran again; "ok" kept its result
    assert history["flaky"]["state"] == "failed" and history["flaky"]["tries"] == 1
    assert history["flaky"]["error"] == tasks_of(first)["flaky"]["error"]
    assert history["flaky"]["started_at"] == tasks_of(first)["flaky"]["started_at"]
    assert history["last"]["state"] == "upstream_failed"


def test_a_retry_after_a_fix_runs_the_stored_definition_unless_asked_for_the_current_one(engine, scheduler):
    add(engine, job_id="fixme", tasks=[
        {"name": "ok", "handler": "Record"},
        {"name": "step", "handler": "Fail", "kwargs": {"message": "boom"}, "depends_on": ["ok"]},
        {"name": "last", "handler": "Record", "depends_on": ["step"]},
    ])
    run_id = run_to_end(engine, scheduler, "fixme")["run_id"]
    fixed = [
        {"name": "ok", "handler": "Record"},
        {"name": "step", "handler": "Echo", "kwargs": {"value": "fixed"}, "depends_on": ["ok"]},
        {"name": "last", "handler": "Record", "depends_on": ["step"]},
        {"name": "new", "handler": "Record", "depends_on": ["step"]},
    ]
    jobs.patch_job(engine, "fixme", {"tasks": fixed}, None)
    retry.retry_run(engine, "fixme", run_id)  # the snapshot: the same failure again
    scheduler.wakeup()
    run = poll(lambda: _ended(engine, "fixme", run_id))
    assert run["status"] == "failed" and tasks_of(run)["step"]["error"].endswith("boom")
    retry.retry_run(engine, "fixme", run_id, definition="current")
    scheduler.wakeup()
    run = poll(lambda: _ended(engine, "fixme", run_id))
    assert run["status"] == "succeeded", run
    assert tasks_of(run)["step"]["result"] == "fixed" and tasks_of(run)["new"]["state"] == "succeeded"
    assert [what for what, task, _ in test_handlers.events if task == "ok"] == ["start", "end"]
    assert [attempt["retried_with"] for attempt in run["attempts"]] == ["snapshot", "current"]
    assert [attempt["status"] for attempt in run["attempts"]] == ["failed", "failed"]


def test_a_retry_names_an_unknown_definition(engine, scheduler):
    add(engine, job_id="wf", tasks=[{"name": "step", "handler": "Fail", "kwargs": {"message": "x"}}])
    run_id = run_to_end(engine, scheduler, "wf")["run_id"]
    with pytest.raises(InvalidInput) as caught:
        retry.retry_run(engine, "wf", run_id, definition="latest")
    assert caught.value.field == "definition"


def test_cancel_stops_what_has_not_started(engine, scheduler):
    add(engine, job_id="long", tasks=[
        {"name": "slow", "handler": "Record", "kwargs": {"seconds": 0.5}},
        {"name": "after", "handler": "Record", "depends_on": ["slow"]},
    ])
    run_id = runs.request_run(engine, "long")["run_id"]
    scheduler.wakeup()
    poll(lambda: any(what == "start" for what, _, _ in test_handlers.events))
    queries.cancel_run(engine, "long", run_id)
    scheduler.wakeup()
    run = poll(lambda: _ended(engine, "long", run_id))
    assert run["status"] == "cancelled"
    assert tasks_of(run)["after"]["state"] == "cancelled" or tasks_of(run)["after"]["state"] == "upstream_failed"
    with engine.connect() as connection:
        graph = connection.execute(select(job_runs.c.graph).where(job_runs.c.run_id == run_id)).scalar()
    assert [task["name"] for task in graph["tasks"]] == ["slow", "after"]
