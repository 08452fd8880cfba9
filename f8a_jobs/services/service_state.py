"""Whether the service fires jobs at all: a row, so pausing survives a restart."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from f8a_jobs.core.access import SERVICE, Actor
from f8a_jobs.core.errors import Forbidden, InvalidInput
from f8a_jobs.services import audit
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


def set_state(engine: Engine, state: str, actor: Actor = SERVICE) -> str:
    """Pause or resume firing (admins only), audited as ``service_pause``/``service_resume``."""
    if state not in STATES:
        raise InvalidInput("state", f"{state!r} is not one of {', '.join(STATES)}")
    if not actor.caller.admin:
        raise Forbidden("state", "only an admin may pause or resume the service")
    try:
        _write(engine, state, actor)
    except IntegrityError:  # another process inserted the row first: now it exists
        _write(engine, state, actor)
    return state


def _write(engine: Engine, state: str, actor: Actor) -> None:
    with wakeups.changing(engine, wakeups.STATE) as connection:
        action = "service_pause" if state == "paused" else "service_resume"
        audit.record(connection, actor, action, None, {"state": {"old": read_state(connection)}})
        updated = connection.execute(
            update(service_state).where(service_state.c.key == "state").values(value=state)
        ).rowcount
        if not updated:
            connection.execute(insert(service_state).values(key="state", value=state))
