"""Remote execution (``F8A_JOBS_EXECUTOR=celery``): real ``f8a-jobs worker`` processes on real
brokers run plain runs and workflow tries; the database records them; the failure paths
(a worker killed, a broker restarted, duplicate and cancelled messages) lose nothing and run
nothing twice."""

import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid

import kombu
import pytest

from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.errors import ConfigurationError
from f8a_jobs.core.settings import Settings
from f8a_jobs.execution.executors.messages import claimed_run, run_message, start_of, try_message
from f8a_jobs.services.runs import ClaimedRun
from f8a_jobs.services.workflows.engine import Start
from tests.conftest import BROKERS, ROOT, TEST_SETTINGS, poll
from tests.test_celery import RedisServer
from tests.test_observability import metrics_of, sample
from tests.test_workflows import VDK

ENDED = ("succeeded", "failed", "cancelled")


class RemoteWorker:
    """A real ``f8a-jobs worker`` process (its pool's processes in its own session)."""

    def __init__(self, database_url, broker_url, queues, log_path, concurrency=1, pool="prefork", **env):
        self.log_path, self.broker_url, self.queues = log_path, broker_url, queues
        environment = {**os.environ, **TEST_SETTINGS, "PYTHONPATH": str(ROOT),
                       "F8A_JOBS_DATABASE_URL": database_url, "F8A_JOBS_BROKER_URL": broker_url, **env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "f8a_jobs.cli", "worker", "--queues", queues,
             "--concurrency", str(concurrency), "--pool", pool],
            env=environment, cwd=ROOT, stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        poll(self._ready, timeout=60, interval=0.1)

    def _ready(self):
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log()}")
        return " ready." in self.log()

    def log(self):
        return self.log_path.read_text(errors="replace")

    def kill(self):
        """``kill -9`` of the worker and its pool's processes."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def fresh_pg(pytestconfig):
    from f8a_jobs.storage.db import build_engine
    from f8a_jobs.storage.migrate import migrate
    from tests.conftest import wipe

    url = str(pytestconfig.f8a_pg_url)
    engine = build_engine(url)
    migrate(engine)
    wipe(engine)
    engine.dispose()
    return url


@pytest.fixture
def remote(fresh_pg, server_factory, tmp_path):
    """Start a leader (``server(broker)``) and workers (``worker(broker, queues)``) on fresh
    queues; everything stops at the end."""
    workers = []
    queue = f"f8a-jobs-test-{uuid.uuid4().hex[:8]}"

    class Remote:
        default_queue = queue

        @staticmethod
        def server(broker_url, **env):
            settings = {"F8A_JOBS_EXECUTOR": "celery", "F8A_JOBS_BROKER_URL": broker_url,
                        "F8A_JOBS_TASK_QUEUE": queue, "F8A_JOBS_WORKERS": "1",
                        "F8A_JOBS_LEADER_POLL_INTERVAL": "0.5", **env}
            return server_factory(fresh_pg, **settings).start()

        @staticmethod
        def worker(broker_url, queues=queue, concurrency=1, pool="prefork", **env):
            log_path = tmp_path / f"worker-{len(workers)}.log"
            workers.append(RemoteWorker(fresh_pg, broker_url, queues, log_path, concurrency, pool, **env))
            return workers[-1]

    yield Remote
    for worker in workers:
        worker.stop()
    shared = set(BROKERS.values())  # not a test's own broker: it is gone by now
    for broker_url, queues in {(w.broker_url, w.queues) for w in workers}:
        if broker_url in shared:
            with kombu.Connection(broker_url, connect_timeout=5) as connection:
                for name in queues.split(","):  # the shared brokers keep no queue of ours
                    connection.default_channel.queue_delete(name)


def run_of(server, job_id, run_id):
    return server.get(f"/jobs/{job_id}/runs/{run_id}").json()["run"]


def ended(server, job_id, run_id):
    run = run_of(server, job_id, run_id)
    return run if run["status"] in ENDED else None


def create(server, **job):
    response = server.post("/jobs", json={"state": "paused", **job})
    assert response.status_code == 201, response.text
    return response.json()["job"]


def run_now(server, job_id):
    return server.post(f"/jobs/{job_id}/run").json()["run"]["run_id"]


def starts(path):
    return path.read_text().split() if path.exists() else []


def touching(server, tmp_path, seconds, value, *then):
    """Run a plain job and a workflow whose task ``a`` touch files for ``seconds`` (``a``
    returns ``value``; ``then`` are more tasks); return once both have started."""
    run_marks, task_marks = tmp_path / "run", tmp_path / "task"
    create(server, job_id="plain", handler="Touch", kwargs={"path": str(run_marks), "seconds": seconds})
    touch = {"path": str(task_marks), "seconds": seconds, "value": value}
    create(server, job_id="flow", tasks=[{"name": "a", "handler": "Touch", "kwargs": touch}, *then])
    plain, flow = run_now(server, "plain"), run_now(server, "flow")
    poll(lambda: starts(run_marks) and starts(task_marks), timeout=30)
    return plain, flow, run_marks, task_marks


# --- messages and settings ------------------------------------------------------------------


def test_messages_are_json_and_carry_the_try_they_start():
    run = ClaimedRun("r1", "job", utcnow(), "Touch", {"path": "/x"}, 3, "leader:1", None, False,
                     {"tries": 2}, 2, "manual")
    assert claimed_run(run_message(run)) == run
    start = Start("r1", "job", utcnow(), "a/b", 4, 10, 2, "Echo", {"value": [1]}, utcnow(), "q", 1.5)
    assert start_of(try_message(start)) == dataclasses.replace(start, queue=None)  # routing only


def test_the_celery_executor_needs_a_broker():
    with pytest.raises(ConfigurationError, match="F8A_JOBS_BROKER_URL"):
        Settings.from_env({"F8A_JOBS_EXECUTOR": "celery"})


def test_queue_names_are_checked(fresh_pg, server_factory):
    server = server_factory(fresh_pg, F8A_JOBS_WORKERS="1").start()
    bad = server.post("/jobs", json={"job_id": "q", "handler": "Noop", "queue": "no spaces"})
    assert bad.status_code == 400 and "queue" in bad.text
    task = server.post("/jobs", json={"job_id": "w", "tasks": [{"name": "a", "handler": "Noop", "queue": "bad queue!"}]})
    assert task.status_code == 400 and "tasks[0].queue" in task.text
    on_workflow = server.post("/jobs", json={"job_id": "w", "queue": "q", "tasks": [{"name": "a", "handler": "Noop"}]})
    assert on_workflow.status_code == 400 and "queue" in on_workflow.text
    good = server.post("/jobs", json={"job_id": "q", "handler": "Noop", "queue": "gpu.large"})
    assert good.status_code == 201 and good.json()["job"]["queue"] == "gpu.large"


# --- runs on workers ------------------------------------------------------------------------


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_runs_and_tries_run_on_workers_and_results_pass_between_them(broker, remote, tmp_path):
    server = remote.server(BROKERS[broker])
    first = remote.worker(BROKERS[broker], queues=f"{remote.default_queue},one")
    second = remote.worker(BROKERS[broker], queues="two")
    marks = tmp_path / "marks"
    create(server, job_id="plain", handler="Touch", kwargs={"path": str(marks), "value": {"n": 1}})
    run_id = run_now(server, "plain")
    run = poll(lambda: ended(server, "plain", run_id), timeout=30)
    assert run["status"] == "succeeded", run
    assert run["result"] == {"n": 1} and run["tries"] == 1
    assert run["worker"].endswith(f":{starts(marks)[0]}")  # the worker's process ran it

    create(server, job_id="flow", tasks=[
        {"name": "a", "handler": "Square", "kwargs": {"value": 7}, "queue": "one"},
        {"name": "b", "handler": "Echo", "kwargs": {"value": {"$result": "a"}}, "queue": "two",
         "depends_on": ["a"]},
    ])
    run_id = run_now(server, "flow")
    run = poll(lambda: ended(server, "flow", run_id), timeout=30)
    assert run["status"] == "succeeded", run
    tasks = {task["name"]: task for task in run["tasks"]}
    assert tasks["a"]["result"] == 49 and tasks["b"]["result"] == 49
    assert tasks["a"]["worker"] != tasks["b"]["worker"]  # different worker processes
    assert "succeeded" in first.log() and "succeeded" in second.log()


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_the_vdk_example_across_two_workers_keeps_its_concurrency_limit(broker, remote):
    server = remote.server(BROKERS[broker])
    remote.worker(BROKERS[broker])
    remote.worker(BROKERS[broker])
    for n in range(1, 7):
        create(server, job_id=f"job{n}", handler="Sleep", kwargs={"seconds": 0.4})
    create(server, job_id="meta", tasks=VDK, max_concurrent=2)
    run_id = run_now(server, "meta")
    run = poll(lambda: ended(server, "meta", run_id), timeout=60)
    assert run["status"] == "succeeded", run
    tasks = {task["name"]: task for task in run["tasks"]}
    start = {name: task["started_at"] for name, task in tasks.items()}
    end = {name: task["finished_at"] for name, task in tasks.items()}
    assert end["job1"] <= min(start["job2"], start["job3"], start["job4"])
    assert end["job3"] <= min(start["job5"], start["job6"])
    for name in tasks:  # never more than two at once
        running = [other for other in tasks if start[other] <= start[name] < end[other]]
        assert len(running) <= 2, (name, running)
    assert len({task["worker"] for task in tasks.values()}) == 2  # each worker runs one at a time


# --- failure paths ----------------------------------------------------------------------------


def test_a_worker_killed_mid_task_has_its_work_run_again_on_another_within_30_s(remote, tmp_path):
    """Redis: the killed worker's unacknowledged messages would come back only after the
    visibility timeout; the heartbeats (default lease, 20 s) bring them back sooner."""
    url = BROKERS["redis"]
    server = remote.server(url)
    victim = remote.worker(url, concurrency=2)
    then = {"name": "b", "handler": "Echo", "kwargs": {"value": {"$result": "a"}}, "depends_on": ["a"]}
    plain, flow, run_marks, task_marks = touching(server, tmp_path, 4, 5, then)
    survivor = remote.worker(url, concurrency=2)
    victim.kill()
    killed_at = time.monotonic()
    poll(lambda: len(starts(run_marks)) == 2 and len(starts(task_marks)) == 2, timeout=40)
    assert time.monotonic() - killed_at < 30
    run = poll(lambda: ended(server, "plain", plain), timeout=30)
    assert run["status"] == "succeeded" and run["tries"] == 2, run
    workflow = poll(lambda: ended(server, "flow", flow), timeout=30)
    assert workflow["status"] == "succeeded", workflow
    tasks = {task["name"]: task for task in workflow["tasks"]}
    assert tasks["a"]["tries"] == 2 and tasks["b"]["result"] == 5
    assert starts(run_marks)[1] != starts(run_marks)[0]  # another process ran it again
    assert len(starts(run_marks)) == 2 and len(starts(task_marks)) == 2  # and only once more
    assert " ready." in survivor.log()


def test_a_broker_restart_mid_workflow_delays_tasks_and_loses_none(remote, tmp_path):
    redis = RedisServer(tmp_path).start()
    url = f"redis://127.0.0.1:{redis.port}/0"
    try:
        server = remote.server(url)
        remote.worker(url)
        marks = tmp_path / "marks"
        touch = {"handler": "Touch", "kwargs": {"path": str(marks), "seconds": 1.5}}
        create(server, job_id="chain", tasks=[
            {"name": "a", **touch}, {"name": "b", **touch, "depends_on": ["a"]},
            {"name": "c", **touch, "depends_on": ["b"]}])
        run_id = run_now(server, "chain")
        poll(lambda: len(starts(marks)) == 2, timeout=30)  # b runs: kill the broker under it
        redis.kill()
        # b ends and is recorded without the broker; c cannot be sent until it is back
        poll(lambda: "sending 1 runs to the broker failed" in server.log(), timeout=30)
        assert run_of(server, "chain", run_id)["status"] == "running"
        redis.start()
        run = poll(lambda: ended(server, "chain", run_id), timeout=60)
        assert run["status"] == "succeeded", run
        assert [task["tries"] for task in run["tasks"]] == [1, 1, 1]
        assert len(starts(marks)) == 3
    finally:
        redis.kill()


def test_duplicate_messages_are_dropped(remote, tmp_path):
    """No worker for a while: the leader sends the message again and again; the worker that
    comes takes the run once and drops the copies."""
    url = BROKERS["redis"]
    server = remote.server(url, F8A_JOBS_REMOTE_RESEND_AFTER="0.3")
    marks = tmp_path / "marks"
    create(server, job_id="plain", handler="Touch", kwargs={"path": str(marks)})
    run_id = run_now(server, "plain")
    poll(lambda: server.log().count("sending it again") >= 2, timeout=30)
    worker = remote.worker(url)
    run = poll(lambda: ended(server, "plain", run_id), timeout=30)
    assert run["status"] == "succeeded" and run["tries"] == 1
    poll(lambda: "stale or duplicate message dropped" in worker.log(), timeout=30)
    assert len(starts(marks)) == 1


def test_timeouts_are_celery_time_limits(remote):
    url = BROKERS["rabbitmq"]
    server = remote.server(url)
    remote.worker(url)
    create(server, job_id="slow", handler="Sleep", kwargs={"seconds": 30}, timeout=1)
    run_id = run_now(server, "slow")
    run = poll(lambda: ended(server, "slow", run_id), timeout=20)
    assert run["status"] == "failed"
    assert run["error"] == "timed out: the run ran longer than its timeout of 1 s (Celery's time limit)"


def test_cancel_revokes_a_run_no_worker_took(remote, tmp_path):
    url = BROKERS["rabbitmq"]
    server = remote.server(url)
    marks = tmp_path / "marks"
    create(server, job_id="plain", handler="Touch", kwargs={"path": str(marks)})
    run_id = run_now(server, "plain")
    poll(lambda: run_of(server, "plain", run_id)["status"] == "running", timeout=30)
    assert server.post(f"/jobs/plain/runs/{run_id}/cancel").status_code in (200, 202)
    run = poll(lambda: ended(server, "plain", run_id), timeout=30)
    assert run["status"] == "cancelled"
    worker = remote.worker(url)
    create(server, job_id="after", handler="Touch", kwargs={"path": str(tmp_path / "after")})
    later = run_now(server, "after")
    assert poll(lambda: ended(server, "after", later), timeout=30)["status"] == "succeeded"
    assert starts(marks) == []  # the revoked run never ran
    assert "stale or duplicate message dropped" in worker.log()  # had it come before the revoke


def test_runs_and_tries_no_worker_took_show_they_wait_and_count_as_waiting(remote, tmp_path):
    """A message on a queue no worker listens on: the run (and the try) is not in progress,
    and says so, in the API and in the metrics; once a worker comes, it runs."""
    url = BROKERS["redis"]
    server = remote.server(url)
    create(server, job_id="plain", handler="Touch", kwargs={"path": str(tmp_path / "run")})
    create(server, job_id="flow", tasks=[{"name": "a", "handler": "Touch",
                                          "kwargs": {"path": str(tmp_path / "task")}}])
    plain, flow = run_now(server, "plain"), run_now(server, "flow")
    run = poll(lambda: (r := run_of(server, "plain", plain))["status"] == "running" and r)
    assert run["waiting_for_worker"] is True and run["worker"] is None, run

    def task_sent():
        run = run_of(server, "flow", flow)
        return [task["state"] for task in run["tasks"]] == ["running"] and run

    workflow = poll(task_sent)
    assert workflow["status"] == "running" and workflow["waiting_for_worker"] is False, workflow
    assert workflow["tasks"][0]["waiting_for_worker"] is True, workflow
    assert workflow["tasks"][0]["worker"] is None
    text = metrics_of(server).text
    assert sample(text, 'f8a_jobs_runs_now{status="waiting"}') == 1.0, text
    assert sample(text, 'f8a_jobs_runs_now{status="running"}') == 1.0  # the workflow run
    assert sample(text, 'f8a_jobs_tasks_now{state="waiting"}') == 1.0
    assert sample(text, 'f8a_jobs_tasks_now{state="running"}') is None

    remote.worker(url)
    run = poll(lambda: ended(server, "plain", plain), timeout=30)
    assert run["status"] == "succeeded" and run["worker"] and run["waiting_for_worker"] is False
    workflow = poll(lambda: ended(server, "flow", flow), timeout=30)
    assert workflow["tasks"][0]["worker"] and workflow["tasks"][0]["waiting_for_worker"] is False
    assert sample(metrics_of(server).text, 'f8a_jobs_runs_now{status="waiting"}') == 0.0


def test_cancelling_a_workflow_stops_the_tries_no_worker_took(remote, tmp_path):
    """One worker running one try at a time, four roots sent to it: after a cancel, the try
    it runs finishes and the three whose messages wait in the broker never execute."""
    url = BROKERS["rabbitmq"]
    server = remote.server(url)
    remote.worker(url, concurrency=1)
    marks = {name: tmp_path / name for name in "abcd"}
    create(server, job_id="flow", tasks=[
        {"name": name, "handler": "Touch", "kwargs": {"path": str(path), "seconds": 3}}
        for name, path in marks.items()
    ])
    run_id = run_now(server, "flow")

    def taken():
        tasks = run_of(server, "flow", run_id)["tasks"]
        return len([task for task in tasks if task["state"] == "running"]) == 4 and [
            task["name"] for task in tasks if task["worker"]]

    first = poll(taken, timeout=30)
    assert server.post(f"/jobs/flow/runs/{run_id}/cancel").status_code == 202
    run = poll(lambda: ended(server, "flow", run_id), timeout=30)
    assert run["status"] == "cancelled", run
    # The worker's queue is drained once a run sent after the cancel has run (one process,
    # messages in order): whatever was to execute has executed by then.
    create(server, job_id="after", handler="Touch", kwargs={"path": str(tmp_path / "after")})
    later = run_now(server, "after")
    assert poll(lambda: ended(server, "after", later), timeout=30)["status"] == "succeeded"
    assert [name for name, path in marks.items() if path.exists()] == first
    states = {task["name"]: task["state"] for task in run_of(server, "flow", run_id)["tasks"]}
    assert states == {name: "succeeded" if name in first else "cancelled" for name in marks}


def test_a_worker_stopped_with_sigterm_finishes_and_records_what_it_runs(remote, tmp_path):
    """Celery's warm shutdown lets the tries end; their outcomes, handed to the worker's
    writers, are written before it exits: nothing waits for a heartbeat to lapse."""
    url = BROKERS["rabbitmq"]
    server = remote.server(url)
    worker = remote.worker(url, concurrency=2)
    plain, flow, run_marks, task_marks = touching(server, tmp_path, 2, 3)
    worker.stop()
    assert worker.process.returncode == 0, worker.log()
    run = poll(lambda: ended(server, "plain", plain), timeout=15)
    assert run["status"] == "succeeded" and run["tries"] == 1, run
    workflow = poll(lambda: ended(server, "flow", flow), timeout=15)
    assert workflow["status"] == "succeeded" and workflow["tasks"][0]["result"] == 3, workflow
    assert len(starts(run_marks)) == 1 and len(starts(task_marks)) == 1


def test_outcomes_the_database_refuses_fail_their_try_and_hold_back_nothing(remote):
    """A NUL in an error is shown as ``\\x00``; a flow PostgreSQL refuses (NUL in JSON) fails
    its run or try alone; the others are recorded."""
    url = BROKERS["redis"]
    server = remote.server(url)
    remote.worker(url, concurrency=4)
    create(server, job_id="nul-error", handler="NulError")
    create(server, job_id="nul-flow", handler="NulFlow")
    create(server, job_id="flow", max_concurrent=4, tasks=NUL_TASKS)
    runs = {job_id: run_now(server, job_id) for job_id in ("nul-error", "nul-flow", "flow")}
    ends = {job_id: poll(lambda j=job_id: ended(server, j, runs[j]), timeout=30) for job_id in runs}
    assert ends["nul-error"]["status"] == "failed"
    assert ends["nul-error"]["error"] == "RuntimeError: bad\\x00byte"
    assert ends["nul-flow"]["status"] == "failed"
    assert ends["nul-flow"]["error"].startswith("the database refused this run's record")
    assert_nul_tasks(ends["flow"])


NUL_TASKS = [
    {"name": "error", "handler": "NulError", "fail_workflow_on_error": False},
    {"name": "refused", "handler": "NulFlow", "fail_workflow_on_error": False},
    {"name": "fine", "handler": "Square", "kwargs": {"value": 3}},
]


def assert_nul_tasks(run):
    tasks = {task["name"]: task for task in run["tasks"]}
    assert tasks["error"]["state"] == "failed" and tasks["error"]["tries"] == 1
    assert tasks["error"]["error"] == "RuntimeError: bad\\x00byte"
    assert tasks["refused"]["state"] == "failed" and tasks["refused"]["tries"] == 1
    assert tasks["refused"]["error"] == (
        "ValueError: flow 'nulFlow' holds a NUL character, which cannot be stored"
    )
    assert tasks["fine"]["state"] == "succeeded" and tasks["fine"]["result"] == 9


def test_a_flow_the_database_refuses_fails_its_task_in_process_too(fresh_pg, server_factory):
    """It used to fail the runner's every write: no workflow run advanced again."""
    server = server_factory(fresh_pg, F8A_JOBS_WORKERS="1").start()
    create(server, job_id="flow", max_concurrent=4, tasks=NUL_TASKS)
    run_id = run_now(server, "flow")
    assert_nul_tasks(poll(lambda: ended(server, "flow", run_id), timeout=30))


def test_no_worker_takes_a_try_of_a_run_asked_to_cancel(fresh_pg):
    """The row decides, whatever became of the revoke and before the runner has read the
    request; the runner then withdraws the tries still in the broker, and only those."""
    from sqlalchemy import insert, select, update

    from f8a_jobs.services.runs import tasks
    from f8a_jobs.storage.db import build_engine
    from f8a_jobs.storage.tables import job_runs, run_tasks

    engine, run_id, now = build_engine(fresh_pg), "r" * 32, utcnow()
    row = {"run_id": run_id, "part": -1, "state": "running", "tries": 1, "executed": False,
           "worker": ""}
    with engine.begin() as connection:
        connection.execute(insert(job_runs), {"run_id": run_id, "job_id": "flow", "status": "running",
                                              "trigger": "manual", "scheduled_for": now})
        connection.execute(insert(run_tasks), [{**row, "task": "taken"}, {**row, "task": "sent"}])
    with engine.begin() as connection:
        assert tasks.start_remote(connection, (run_id, "taken", -1), 1, "w:1", now)
        connection.execute(update(job_runs).values(cancel_requested=True))
    with engine.begin() as connection:
        assert not tasks.start_remote(connection, (run_id, "sent", -1), 1, "w:1", now)
        withdrawn = tasks.withdraw(connection, [run_id], now)
    with engine.connect() as connection:
        states = dict(connection.execute(select(run_tasks.c.task, run_tasks.c.state)).all())
    engine.dispose()
    assert [(row.task, row.tries) for row in withdrawn] == [("sent", 1)]
    assert states == {"taken": "running", "sent": "cancelled"}


def test_a_report_the_database_refuses_is_replaced_by_a_failed_try(fresh_pg):
    """The net under the checks: a report PostgreSQL refuses even alone (a NUL inside its
    result) becomes a failed try saying why, and the report beside it is written."""
    from sqlalchemy import insert, select

    from f8a_jobs.execution.executors.reports import Report, ReportWriter
    from f8a_jobs.services.workflows.engine import TryOutcome
    from f8a_jobs.storage.db import build_engine
    from f8a_jobs.storage.tables import run_tasks

    engine = build_engine(fresh_pg)
    row = {"run_id": "r" * 32, "part": -1, "state": "running", "tries": 1, "executed": False,
           "worker": "w:1"}
    with engine.begin() as connection:
        connection.execute(insert(run_tasks), [{**row, "task": "bad"}, {**row, "task": "good"}])
    written = []
    writer = ReportWriter(engine, written=written.extend)
    for task, result in (("bad", {"text": "a\x00b"}), ("good", 7)):
        start = Start("r" * 32, "job", utcnow(), task, -1, None, 1, "Noop", {}, None)
        outcome = TryOutcome(start.run_id, task, -1, 1, "succeeded", utcnow(), utcnow(), True)
        outcome.result = result
        writer.add(Report(start, outcome, "w:1"))
    writer.flush()
    with engine.connect() as connection:
        reported = dict(connection.execute(select(run_tasks.c.task, run_tasks.c.reported)).all())
    engine.dispose()
    assert reported["good"]["state"] == "succeeded" and reported["good"]["result"] == 7
    assert reported["bad"]["state"] == "failed" and reported["bad"]["result"] is None
    assert reported["bad"]["error"].startswith("the database refused this try's report")
    assert sorted(report.start.task for report in written) == ["bad", "good"]


# --- run logs on workers (issue 20): both pools keep what handlers log, prefork their print and
# stderr too, and a worker killed mid-try keeps what it logged up to a second before ----------


def logs_of(server, job_id, run_id, **params):
    response = server.get(f"/jobs/{job_id}/runs/{run_id}/logs", params=params)
    assert response.status_code == 200, response.text
    return [(record["logger"], record["message"]) for record in response.json()["records"]]


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_workers_runs_and_tries_keep_their_logs(remote, pool):
    server = remote.server(BROKERS["redis"])
    remote.worker(BROKERS["redis"], pool=pool, concurrency=2)
    create(server, job_id="plain", handler="Chatty", kwargs={"tag": "P", "fail": True})
    create(server, job_id="flow", tasks=[{"name": "a", "handler": "Chatty", "kwargs": {"tag": "W"}}])
    plain, flow = run_now(server, "plain"), run_now(server, "flow")
    poll(lambda: ended(server, "plain", plain) and ended(server, "flow", flow), timeout=60)
    shown = logs_of(server, "plain", plain)
    assert shown[:4] == [("tests.handlers.Chatty", f"P line {n}") for n in range(3)] + [
        ("some.library", "P from a library")]
    assert "RuntimeError: P failed" in shown[-1][1]
    task = logs_of(server, "flow", flow, task="a")
    assert ("tests.handlers.Chatty", "W line 0") in task
    # print and stderr: the try's, by the thread that writes them (prefork: one try a process)
    assert ("stdout", "P printed") in shown and ("stderr", "P on stderr") in shown
    assert ("stdout", "W printed") in task


def test_a_worker_killed_mid_try_keeps_the_lines_it_logged_before(remote, tmp_path):
    server = remote.server(BROKERS["redis"], F8A_JOBS_RUN_LEASE="4")
    worker = remote.worker(BROKERS["redis"])
    never = tmp_path / "never"
    create(server, job_id="doomed", handler="Chatty", kwargs={"tag": "D", "wait_for": str(never)})
    run_id = run_now(server, "doomed")
    # The lines are written while the try runs (within the flush interval, a second)...
    poll(lambda: len(logs_of(server, "doomed", run_id)) >= 4, timeout=30)
    before = logs_of(server, "doomed", run_id)
    worker.kill()  # ...so kill -9 of the worker and its pool loses none of them
    remote.worker(BROKERS["redis"])
    poll(lambda: ended(server, "doomed", run_id) or server.get(
        f"/jobs/doomed/runs/{run_id}").json()["run"]["tries"] > 1, timeout=60)
    kept = logs_of(server, "doomed", run_id, **{"try": 1})
    assert kept[: len(before)] == before
    assert ("tests.handlers.Chatty", "D line 2") in kept


def test_functions_run_on_workers_as_entry_points(remote):
    server = remote.server(BROKERS["redis"])
    remote.worker(BROKERS["redis"])
    create(server, job_id="fn", entrypoint="tests.handlers.scaled", kwargs={"value": 4})
    run_id = run_now(server, "fn")
    run = poll(lambda: ended(server, "fn", run_id), timeout=30)
    assert run["status"] == "succeeded", run
    assert run["result"]["value"] == 8 and run["result"]["name"] == "fn"
    assert run["result"]["pid"] != server.process.pid and run["worker"]  # a worker ran it
    create(server, job_id="fns", tasks=[
        {"name": "first", "entrypoint": "tests.handlers.scaled", "kwargs": {"value": 5}},
        {"name": "then", "entrypoint": "tests.handlers.added", "depends_on": ["first"]},
    ])
    run_id = run_now(server, "fns")
    run = poll(lambda: ended(server, "fns", run_id), timeout=30)
    assert run["status"] == "succeeded", run
    tasks = {task["name"]: task for task in run["tasks"]}
    assert tasks["then"]["result"] == 10 and tasks["first"]["result"]["name"] == "first"
