import threading

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from f8a_jobs.storage.db import build_engine
from f8a_jobs.storage.locks import LeaderLock, exclusive
from f8a_jobs.storage.migrate import migrate
from f8a_jobs.storage.tables import metadata


def test_migrations_create_exactly_the_declared_tables(engine):
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    assert diff == []
    assert {"jobs", "job_runs", "flow_outbox", "service_state"} <= set(
        inspect(engine).get_table_names()
    )


def test_migrating_twice_changes_nothing(engine):
    migrate(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []


def test_leader_lock_admits_one_holder_until_released(db_url, engine):
    other_engine = build_engine(db_url)
    first, second = LeaderLock(engine, "t-leader"), LeaderLock(other_engine, "t-leader")
    try:
        assert first.try_acquire()
        assert first.still_held()
        assert not second.try_acquire()
        first.release()
        assert second.try_acquire()
    finally:
        first.release()
        second.release()
        other_engine.dispose()


def test_exclusive_serialises_concurrent_holders(engine):
    inside, overlaps = [], []

    def work() -> None:
        with exclusive(engine, "t-exclusive"):
            overlaps.append(len(inside))
            inside.append(1)
            threading.Event().wait(0.02)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == [0, 0, 0, 0]
