"""The run lifecycle on both backends: fire, claim, finish, fencing, poison records, retention."""

import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.flow import Flow
from f8a_jobs.execution.executors.base import execute_run
from f8a_jobs.execution.firing import fire
from f8a_jobs.execution.recording import RunWriter
from f8a_jobs.execution.relay import Relay
from f8a_jobs.services import jobs, runs
from f8a_jobs.services.flows.base import DeliveryFailed, Dispatcher
from f8a_jobs.services.flows.embedded import EmbeddedDispatcher, summary
from f8a_jobs.services.flows.outbox import delete_old_flows, flow_row
from f8a_jobs.services.runs import Fire
from f8a_jobs.services.runs.logs import TryKey
from f8a_jobs.services.runs.queries import list_runs
from f8a_jobs.storage.bulk import insert_rows
from f8a_jobs.storage.fencing import LostLeadership, begin_term
from f8a_jobs.storage.tables import flow_outbox, job_runs, run_logs
from f8a_jobs.storage.tables import jobs as jobs_table


def add(engine, job_id, handler="Noop", kwargs=None, **fields):
    return jobs.create_job(engine, jobs.parse_job({"job_id": job_id, "handler": handler, "kwargs": kwargs or {}, **fields}))


def term(engine, holder="test"):
    with engine.begin() as connection:
        return begin_term(connection, holder, utcnow())


def revision(engine, job_id):
    with engine.connect() as connection:
        return connection.execute(select(jobs_table.c.revision).where(jobs_table.c.job_id == job_id)).scalar()


def fire_now(engine, epoch, *job_ids, when=None):
    when = when or utcnow()
    advances = [{"job_id": j, "revision": revision(engine, j), "next_run_time": None, "last_run": when} for j in job_ids]
    with engine.begin() as connection:
        return fire(connection, epoch, advances, [Fire(j, (when,), 3600) for j in job_ids], utcnow())[0]


def claim(engine, epoch, owner="me", limit=100):
    with engine.begin() as connection:
        return runs.claim(connection, epoch, owner, limit, utcnow())


def runs_of(engine, job_id):
    return list_runs(engine, job_id)[0]


def test_a_due_fire_is_a_queued_run_in_the_transaction_that_advances_the_job(engine):
    add(engine, "a", when=(utcnow() + timedelta(hours=1)).isoformat())
    epoch = term(engine)
    assert fire_now(engine, epoch, "a") == 1
    (run,) = runs_of(engine, "a")
    assert run["status"] == "queued" and run["trigger"] == "schedule"
    assert jobs.get_job(engine, "a")["next_run_time"] is None  # advanced in the same commit
    assert fire_now(engine, epoch, "a") == 0  # the stale revision fires nothing twice


def test_a_job_paused_or_deleted_after_the_scheduler_read_it_does_not_run(engine):
    add(engine, "paused-later", periodically="1 hour")
    add(engine, "deleted-later", periodically="1 hour")
    add(engine, "paused-before-claim", periodically="1 hour")
    epoch = term(engine)
    stale = {j: revision(engine, j) for j in ("paused-later", "deleted-later")}
    jobs.set_job_state(engine, "paused-later", "paused")
    jobs.delete_job(engine, "deleted-later")
    advances = [{"job_id": j, "revision": r, "next_run_time": None, "last_run": utcnow()} for j, r in stale.items()]
    with engine.begin() as connection:
        assert fire(connection, epoch, advances, [Fire(j, (utcnow(),), 60) for j in stale], utcnow()) == (0, [])
    assert runs_of(engine, "paused-later") == []
    assert fire_now(engine, epoch, "paused-before-claim") == 1
    jobs.set_job_state(engine, "paused-before-claim", "paused")  # between queueing and claiming
    assert claim(engine, epoch) == []
    (run,) = runs_of(engine, "paused-before-claim")
    assert run["status"] == "missed" and run["error"] == "the job was paused before the run started"


def test_deleting_a_job_takes_its_queued_and_running_runs_and_a_late_finish_records_nothing(engine):
    add(engine, "d")
    epoch = term(engine)
    fire_now(engine, epoch, "d")
    (claimed,) = claim(engine, epoch)
    jobs.delete_job(engine, "d")
    with engine.begin() as connection:
        assert runs.finish(connection, [runs.Outcome(claimed, "succeeded", utcnow(), flows=[
            flow_row("d", claimed.run_id, 0, Flow("f", {}))])]) == set()
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(job_runs)).scalar() == 0
        assert connection.execute(select(func.count()).select_from(flow_outbox)).scalar() == 0


def test_a_new_term_fences_the_old_one_out_of_firing_and_claiming_but_not_out_of_finishing(engine):
    add(engine, "f", periodically="1 hour")
    old = term(engine, "old")
    fire_now(engine, old, "f")
    (running,) = claim(engine, old, "old-process")
    new = term(engine, "new")
    assert new == old + 1
    with pytest.raises(LostLeadership):
        claim(engine, old)
    with pytest.raises(LostLeadership):
        fire_now(engine, old, "f")
    with engine.begin() as connection:  # the old process ends the run it started: allowed
        assert runs.finish(connection, [runs.Outcome(running, "succeeded", utcnow())]) == {running.run_id}


def test_a_finish_never_overwrites_a_run_another_term_has_failed(engine):
    add(engine, "o")
    old = term(engine)
    fire_now(engine, old, "o")
    (running,) = claim(engine, old, "gone-process")
    with engine.begin() as connection:
        connection.execute(update(job_runs).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
    new = term(engine)
    with engine.begin() as connection:
        assert runs.fail_orphans(connection, new, 60, utcnow()) == 1
    with engine.begin() as connection:  # the old process comes back and tries to finish it
        assert runs.finish(connection, [runs.Outcome(running, "succeeded", utcnow())]) == set()
    (run,) = runs_of(engine, "o")
    assert run["status"] == "failed" and "(gone-process) stopped sending heartbeats" in run["error"]


def test_a_live_process_keeps_its_runs_by_heartbeats(engine):
    add(engine, "h")
    epoch = term(engine)
    fire_now(engine, epoch, "h")
    (running,) = claim(engine, epoch, "alive")
    with engine.begin() as connection:
        connection.execute(update(job_runs).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
        runs.heartbeat(connection, "alive", [running.run_id], utcnow())
        assert runs.fail_orphans(connection, epoch, 60, utcnow()) == 0


def test_a_record_the_database_refuses_is_written_alone_and_holds_back_nothing(engine, backend):
    """A NUL in an error is cleaned; a NUL in a flow fails that run alone (PostgreSQL refuses
    it), and every other run of the batch is recorded with its flows."""
    for job_id, handler in (("nul-error", "NulError"), ("nul-flow", "NulFlow"), ("ok", "FlowScheduling")):
        kwargs = {"flow_name": "f", "flow_arguments": [{"n": 1}]} if handler == "FlowScheduling" else {}
        add(engine, job_id, handler, kwargs)
    epoch = term(engine)
    fire_now(engine, epoch, "nul-error", "nul-flow", "ok")
    claimed = claim(engine, epoch)
    writer = RunWriter(engine)
    for run in claimed:
        writer.add(execute_run(run, engine, 65536))
    writer.flush()
    statuses = {j: runs_of(engine, j)[0] for j in ("nul-error", "nul-flow", "ok")}
    assert statuses["nul-error"]["status"] == "failed"
    assert statuses["nul-error"]["error"] == "RuntimeError: bad\\x00byte"
    assert statuses["ok"]["status"] == "succeeded" and statuses["ok"]["result"] == 1
    if backend == "postgresql":
        assert statuses["nul-flow"]["status"] == "failed"
        assert statuses["nul-flow"]["error"].startswith("the database refused this run's record")
        expected_flows = 1
    else:
        expected_flows = 2
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(flow_outbox)).scalar() == expected_flows
    # and the writer goes on: the next batch is recorded
    add(engine, "after")
    fire_now(engine, epoch, "after")
    (run,) = claim(engine, epoch)
    writer.add(execute_run(run, engine, 65536))
    writer.flush()
    assert runs_of(engine, "after")[0]["status"] == "succeeded"


def test_a_handler_gets_its_run_context_and_its_result_is_stored_bounded(engine):
    add(engine, "ctx", "Context", {"label": "a"})
    add(engine, "huge", "Huge")
    epoch = term(engine)
    fire_now(engine, epoch, "ctx", "huge")
    writer = RunWriter(engine)
    for run in claim(engine, epoch):
        writer.add(execute_run(run, engine, 65536))
    writer.flush()
    (ctx,) = runs_of(engine, "ctx")
    assert ctx["result"]["run_id"] == ctx["run_id"] and ctx["result"]["label"] == "a"
    assert ctx["result"]["scheduled_for"] == ctx["scheduled_for"]
    (huge,) = runs_of(engine, "huge")
    assert huge["status"] == "failed" and "at most 65,536 are kept" in huge["error"]


def test_flows_are_keyed_by_run_and_argument_index(engine):
    add(engine, "k")
    rows = [flow_row("k", "run-1", index, Flow("f", {"n": index})) for index in range(3)]
    for _ in range(2):  # a run written twice (say, run again after a crash) keeps one copy
        with engine.begin() as connection:
            insert_rows(connection, flow_outbox, rows, skip_conflicts=True)
    with engine.connect() as connection:
        keys = connection.execute(select(flow_outbox.c.run_id, flow_outbox.c.arg_index)).all()
    assert sorted(keys) == [("run-1", 0), ("run-1", 1), ("run-1", 2)]


class Refusing(Dispatcher):
    """Refuses flows named 'poison' for good, as a broker refuses a message too large for it."""

    delivered_status = "delivered"

    def __init__(self):
        self.sent = []

    def send(self, flows):
        for index, flow in enumerate(flows):
            if flow["flow_name"] == "poison":
                raise DeliveryFailed(index, ValueError("message too large"), refused=True)
            self.sent.append(flow["arg_index"])


def test_the_relay_marks_a_refused_flow_failed_and_delivers_the_rest(engine):
    add(engine, "r")
    rows = [flow_row("r", "run", n, Flow("poison" if n in (1, 3) else "fine", {})) for n in range(5)]
    with engine.begin() as connection:
        insert_rows(connection, flow_outbox, rows)
    dispatcher = Refusing()
    relay = Relay(engine, dispatcher, term(engine))
    assert relay.deliver_batch() == 5
    assert dispatcher.sent == [0, 2, 4]
    with engine.connect() as connection:
        found = dict(connection.execute(select(flow_outbox.c.arg_index, flow_outbox.c.status)).all())
    assert found == {0: "delivered", 1: "failed", 2: "delivered", 3: "failed", 4: "delivered"}
    assert relay.deliver_batch() == 0


def test_the_embedded_dispatcher_logs_one_info_line_per_batch_and_each_flow_at_debug(engine, caplog):
    add(engine, "many")
    rows = [flow_row("many", "run-9", n, Flow("bayesianFlow", {"n": n})) for n in range(300)]
    with engine.begin() as connection:
        insert_rows(connection, flow_outbox, rows)
    relay = Relay(engine, EmbeddedDispatcher(), term(engine))
    with caplog.at_level(logging.DEBUG, logger="f8a_jobs.services.flows.embedded"):
        assert relay.deliver_batch() == 300
    lines = [(record.levelno, record.getMessage()) for record in caplog.records]
    assert [message for level, message in lines if level == logging.INFO] == [
        "delivered 300 flows (bayesianFlow × 300) of job many, run run-9"
    ]
    debug = [message for level, message in lines if level == logging.DEBUG]
    assert len(debug) == 300 and "{'n': 7}" in debug[7]


def test_a_batch_of_many_jobs_is_summed_up_naming_the_first_jobs():
    rows = [flow_row(f"job-{n % 7}", f"run-{n % 9}", n, Flow("b" if n % 3 else "a", {})) for n in range(30)]
    assert summary(rows) == "30 flows (a × 10, b × 20) of 7 jobs (job-0, job-1, job-2, job-3, job-4, …), 9 runs"
    assert summary(rows[:1]) == "1 flow (a × 1) of job job-0, run run-0"


def test_retention_deletes_old_finished_runs_but_each_jobs_last_ones(engine):
    add(engine, "old", periodically="1 hour")
    now = utcnow()
    rows = [
        runs.run_row("old", now - timedelta(days=60, hours=n), "succeeded", finished_at=now - timedelta(days=60, hours=n))
        for n in range(8)
    ] + [runs.run_row("old", now - timedelta(hours=n), "succeeded") for n in range(2)]
    lines = [
        {**TryKey(row["run_id"], "", -1, 1).columns(), "seq": 1, "ts": now, "level": 20, "logger": "t", "message": "m"}
        for row in rows
    ]
    with engine.begin() as connection:
        insert_rows(connection, job_runs, rows)
        insert_rows(connection, run_logs, lines)
        deleted = runs.delete_old_runs(connection, days=30, keep_last=5, now=now)
    assert deleted == 5  # 10 runs, 8 of them old: the newest 5 stay (2 recent + 3 old)
    remaining = runs_of(engine, "old")
    assert len(remaining) == 5
    with engine.connect() as connection:  # their logs went with them, the others' stay
        logged = set(connection.execute(select(run_logs.c.run_id)).scalars())
    assert logged == {run["run_id"] for run in remaining}
    with engine.begin() as connection:
        assert runs.delete_old_runs(connection, days=30, keep_last=5, now=now) == 0


def test_the_firing_executor_takes_the_runs_it_has_room_for_as_they_are_queued(engine):
    for job_id in ("x1", "x2", "x3"):
        add(engine, job_id, "Context", {"label": "a"})
    epoch = term(engine)
    advances = [{"job_id": j, "revision": revision(engine, j), "next_run_time": None, "last_run": utcnow()} for j in ("x1", "x2", "x3")]
    fires = [Fire(j, (utcnow(),), 60, "Context", {"label": "a"}) for j in ("x1", "x2", "x3")]
    with engine.begin() as connection:
        queued, claimed = fire(connection, epoch, advances, fires, utcnow(), claimant=runs.Claimant("me", 2))
    assert queued == 3 and len(claimed) == 2 and {run.owner for run in claimed} == {"me"}
    statuses = sorted(runs_of(engine, j)[0]["status"] for j in ("x1", "x2", "x3"))
    assert statuses == ["queued", "running", "running"]
    assert [run.handler for run in claimed] == ["Context", "Context"] and claimed[0].kwargs == {"label": "a"}
    (last,) = claim(engine, epoch)  # the third goes the usual way
    assert last.run_id not in {run.run_id for run in claimed}


def test_retention_deletes_flows_delivered_long_ago_only(engine):
    add(engine, "flows")
    now = utcnow()
    rows = [flow_row("flows", "run", n, Flow("f", {})) for n in range(4)]
    for n, row in enumerate(rows):
        row.update(status=("delivered", "sent", "pending", "delivered")[n])
        row["sent_at"] = now - timedelta(days=60 if n < 3 else 1)
    with engine.begin() as connection:
        insert_rows(connection, flow_outbox, rows)
        assert delete_old_flows(connection, days=30, now=now) == 2
        left = dict(connection.execute(select(flow_outbox.c.arg_index, flow_outbox.c.status)).all())
    assert left == {2: "pending", 3: "delivered"}
