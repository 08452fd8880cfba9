"""Leadership in one process on PostgreSQL: terms end and start again without leaking threads,
a stop stops everything even when a step fails, and dead threads end the term."""

import threading

from sqlalchemy import event, text

from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.settings import Settings, get_settings
from f8a_jobs.execution.leader import Leadership
from f8a_jobs.execution.scheduler import FiringScheduler
from f8a_jobs.storage import fencing
from f8a_jobs.storage.db import build_engine
from tests.conftest import poll, wipe


def settings(pg_url):
    return Settings(**{**get_settings().__dict__, "database_url": pg_url, "leader_poll_interval": 0.1})


def current_epoch(engine):
    with engine.connect() as connection:
        return fencing.current_term(connection)["epoch"]


def test_twenty_lost_and_regained_terms_leave_the_thread_count_flat(pg_url, pg_engine):
    wipe(pg_engine)
    leadership = Leadership(pg_engine, settings(pg_url))
    leadership.start()
    try:
        poll(lambda: leadership.scheduler is not None)
        baseline = threading.active_count()
        for _ in range(20):
            epoch = current_epoch(pg_engine)
            pid = leadership.lock.backend_pid()
            with pg_engine.begin() as connection:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            poll(lambda e=epoch: current_epoch(pg_engine) > e and leadership.scheduler is not None)
        poll(lambda: threading.active_count() <= baseline, timeout=10)
    finally:
        leadership.stop()
    poll(lambda: threading.active_count() < baseline, timeout=10)


def test_stop_stops_every_part_even_when_a_step_fails(pg_engine):
    wipe(pg_engine)
    with pg_engine.begin() as connection:
        epoch = fencing.begin_term(connection, "test", utcnow())
    firing = FiringScheduler(pg_engine, get_settings(), epoch, "test", lambda: None)
    firing.start(paused=False)

    def broken():
        raise RuntimeError("the broker connection would not close")

    firing.relay.dispatcher.close = broken
    firing.apscheduler.shutdown = lambda wait=True: broken()
    firing.stop(timeout=5)
    firing.apscheduler.shutdown = type(firing.apscheduler).shutdown.__get__(firing.apscheduler)
    firing.apscheduler.shutdown(wait=True)  # the real one, for this test's own tidiness
    assert not firing.executor.thread.is_alive()
    assert not firing.writer.thread.is_alive()
    assert not firing.relay.thread.is_alive()


def test_a_term_whose_thread_died_ends_and_liveness_says_so_meanwhile(pg_url, pg_engine):
    wipe(pg_engine)
    leadership = Leadership(pg_engine, settings(pg_url))
    leadership.start()
    try:
        scheduler = poll(lambda: leadership.scheduler)
        epoch = current_epoch(pg_engine)
        scheduler.relay._stopped.set()  # the relay thread ends, as if it had crashed
        scheduler.relay._wake.set()
        scheduler.relay.thread.join(5)
        assert "relay" in scheduler.dead_threads()
        poll(lambda: current_epoch(pg_engine) > epoch and leadership.scheduler is not None)
        assert leadership.problems() == []
    finally:
        leadership.stop()


def test_a_standby_polls_the_lock_on_one_session(pg_url, pg_engine):
    wipe(pg_engine)
    leader = Leadership(pg_engine, settings(pg_url))
    standby_engine = build_engine(pg_url)  # its own pool: the leader's sessions are not counted
    connects = []
    event.listen(standby_engine, "connect", lambda *_: connects.append(1))
    standby = Leadership(standby_engine, settings(pg_url))
    leader.start()
    try:
        poll(lambda: leader.scheduler is not None)
        standby.start()
        first = poll(lambda: standby.lock.backend_pid())
        connects_before = len(connects)
        for _ in range(10):  # ten more polls at 0.1 s
            standby._stopped.wait(0.1)
        assert standby.lock.backend_pid() == first and standby.role == "standby"
        assert len(connects) - connects_before <= 1  # not one session per poll
    finally:
        standby.stop()
        leader.stop()
        standby_engine.dispose()
