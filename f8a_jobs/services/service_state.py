"""Whether the service fires jobs at all: a row, so pausing survives a restart."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.storage import wakeups
from f8a_jobs.storage.tables import service_state

STATES = ("running", "paused")


def read_state(connection: Connection) -> str:
    value = connection.execute(
        select(service_state.c.value).where(service_state.c.key == "state")
    ).scalar()
    return value or "running"


def get_state(engine: Engine) -> str:
    with engine.connect() as connection:
        return read_state(connection)


def set_state(engine: Engine, state: str) -> str:
    if state not in STATES:
        raise InvalidInput("state", f"{state!r} is not one of {', '.join(STATES)}")
    try:
        _write(engine, state)
    except IntegrityError:  # another process inserted the row first: now it exists
        _write(engine, state)
    return state


def _write(engine: Engine, state: str) -> None:
    with wakeups.changing(engine, wakeups.STATE) as connection:
        updated = connection.execute(
            update(service_state).where(service_state.c.key == "state").values(value=state)
        ).rowcount
        if not updated:
            connection.execute(insert(service_state).values(key="state", value=state))
