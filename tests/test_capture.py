"""Capturing what handlers log (``execution.capture``, ``log_writer``) against real databases:
lines apart per try, the bound, a database outage, and the masking of secrets."""

import logging
import threading

import pytest
from sqlalchemy import func, select, text

from f8a_jobs.core.json_values import storable_line
from f8a_jobs.core.masking import Masker, masked_kwargs, secret_values
from f8a_jobs.core.settings import Settings
from f8a_jobs.execution import capture
from f8a_jobs.execution.log_writer import LogWriter
from f8a_jobs.services.runs import logs
from f8a_jobs.services.runs.logs import TryKey
from f8a_jobs.storage.db import build_engine
from f8a_jobs.storage.migrate import migrate
from f8a_jobs.storage.tables import run_logs
from tests.conftest import poll

log = logging.getLogger("tests.capture")


def stored(engine, run_id):
    with engine.connect() as connection:
        rows = connection.execute(
            select(run_logs.c.seq, run_logs.c.message).where(run_logs.c.run_id == run_id).order_by(run_logs.c.id)
        ).all()
    return [(row.seq, row.message) for row in rows]


def recorded(engine, try_log):
    """What recording the try's outcome does with its log: commit its last records."""
    with engine.begin() as connection:
        logs.write_last(connection, [try_log.last])


def writer_for(engine, max_bytes=1024 * 1024, buffer_bytes=1024 * 1024, interval=0.05):
    writer = LogWriter(engine, interval, buffer_bytes)
    writer.start()
    capture.install(writer, max_bytes, ["service-secret"])
    return writer


def test_lines_land_in_the_try_of_the_thread_that_logged_them(engine):
    writer = writer_for(engine)
    start = threading.Barrier(2)

    def run(run_id):
        with capture.capturing(TryKey(run_id, "", -1, 1), {}, ()) as try_log:
            start.wait()
            for number in range(200):
                log.warning("%s %d", run_id, number)
        recorded(engine, try_log)

    try:
        threads = [threading.Thread(target=run, args=(name,)) for name in ("run-a", "run-b")]
        [thread.start() for thread in threads]
        [thread.join() for thread in threads]
        log.warning("outside any try")  # kept by nobody
        for run_id in ("run-a", "run-b"):
            assert stored(engine, run_id) == [(n + 1, f"{run_id} {n}") for n in range(200)]
        with engine.connect() as connection:
            assert len(connection.execute(select(run_logs.c.id)).all()) == 400
    finally:
        writer.stop()
        capture.install(None, 0, ())


def test_a_try_over_the_bound_keeps_its_head_and_tail_while_it_runs(engine):
    writer = writer_for(engine, max_bytes=2000, interval=3600)  # written when asked, below
    key = TryKey("loud", "", -1, 1)
    try:
        with capture.capturing(key, {}, ()) as try_log:
            for number in range(100):
                log.warning("line %03d", number)  # 40 + 13 + 8 = 61 bytes a record
            writer.wakeup()
            poll(lambda: len(stored(engine, "loud")) > 16)
            for number in range(100, 200):
                log.warning("line %03d", number)
        recorded(engine, try_log)
        rows = stored(engine, "loud")
        head = [message for seq, message in rows if 0 < seq <= 16]
        assert head == [f"line {n:03d}" for n in range(16)]  # 16 * 61 <= 1000
        note = [message for seq, message in rows if seq == 0]
        tail = [message for seq, message in rows if seq > 16]
        assert tail == [f"line {n:03d}" for n in range(200 - len(tail), 200)]
        assert len(tail) == 16 and note == [f"[{200 - 32:,} records ({(200 - 32) * 61:,} bytes) cut here: a try's log keeps its first and last half of F8A_JOBS_LOG_MAX_BYTES]"]
    finally:
        writer.stop()
        capture.install(None, 0, ())


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_try_ends_with_its_last_records_for_its_outcome_or_after_those_the_writer_holds(engine):
    writer = writer_for(engine, interval=3600)  # writes only when woken
    try:
        with capture.capturing(TryKey("quick", "", -1, 1), {}, ()) as quick:
            log.warning("one")
            log.warning("two")
        assert stored(engine, "quick") == []  # no commit of its own:
        assert [row["message"] for row in quick.last.rows] == ["one", "two"]  # with its outcome
        recorded(engine, quick)
        assert stored(engine, "quick") == [(1, "one"), (2, "two")]

        blocker = engine.connect()  # holds the table: the writer's commit waits
        held_up = blocker.begin()
        blocker.execute(text("LOCK TABLE run_logs IN EXCLUSIVE MODE"))
        logged, go = threading.Event(), threading.Event()
        tries = {}

        def held_try():
            with capture.capturing(TryKey("held", "", -1, 1), {}, ()) as held:
                tries["held"] = held
                log.warning("early")
                logged.set()
                go.wait(30)
                log.warning("late")
            recorded(engine, held)

        ending = threading.Thread(target=held_try)
        ending.start()
        logged.wait(30)
        writer.wakeup()
        poll(lambda: waiting_locks(engine) > 0)  # the writer took "early" and cannot commit
        go.set()
        poll(lambda: tries["held"] in writer._closing)  # the try ended while "early" was held
        held_up.rollback()
        blocker.close()
        ending.join(30)
        assert tries["held"].last is None  # the writer wrote "late" too, after "early"
        assert stored(engine, "held") == [(1, "early"), (2, "late")]
    finally:
        writer.stop()
        capture.install(None, 0, ())


def waiting_locks(engine):
    with engine.connect() as connection:
        waiting = text(
            "NOT granted AND relation = 'run_logs'::regclass"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return connection.execute(select(func.count()).select_from(text("pg_locks")).where(waiting)).scalar_one()


def test_a_database_outage_holds_lines_then_writes_them_dropping_the_oldest_past_the_buffer(own_postgres):
    engine = build_engine(own_postgres.url)
    migrate(engine)
    writer = writer_for(engine, buffer_bytes=100 * 61, interval=0.05)
    try:
        with capture.capturing(TryKey("kept", "", -1, 1), {}, ()):
            log.warning("line 000")
            poll(lambda: stored(engine, "kept"))
            own_postgres.stop()
            for number in range(1, 151):
                log.warning("line %03d", number)
            poll(lambda: writer.failures >= 2)  # the writer tried and held them
            own_postgres.start()
        rows = stored(engine, "kept")
        lines = [message for seq, message in rows if seq > 0]
        assert lines == ["line 000", *(f"line {n:03d}" for n in range(51, 151))]
        assert [message for seq, message in rows if seq < 0] == [
            "[50 records (3,050 bytes) dropped: the database could not be reached and "
            "F8A_JOBS_LOG_BUFFER_BYTES was full]"
        ]
    finally:
        writer.stop()
        capture.install(None, 0, ())
        engine.dispose()


def test_secret_values_and_the_services_secrets_are_masked():
    settings = Settings(
        database_url="postgresql://jobs:db%40pass@db/jobs",
        broker_url="amqp://guest:broker-pass@mq//",
        api_tokens=("token-one",),
    )
    assert set(settings.secrets) == {"db@pass", "broker-pass", "token-one"}
    kwargs = {"db_password": "pw-1", "GITHUB_TOKEN": 12345, "user": "me", "extra": {"a": "nested"}}
    assert sorted(secret_values(kwargs, ["extra"])) == ["12345", "nested", "pw-1"]
    assert masked_kwargs(kwargs) == {**kwargs, "db_password": "***", "GITHUB_TOKEN": "***"}
    mask = Masker(["pw-1", "pw-1-longer", "ab"])
    assert mask("pw-1-longer and pw-1 and ab") == "*** and *** and ab"  # too short to mask


def test_a_line_the_database_cannot_store_is_escaped():
    assert storable_line("nul\x00 and \udcff", 100) == "nul\\x00 and \\udcff"
    assert storable_line("é ok", 100) == "é ok"
    assert storable_line("x" * 500, 100).endswith("[cut: 500 characters in all]")
