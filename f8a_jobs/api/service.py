"""Operations about the service itself: probes and the firing state."""

from __future__ import annotations

from sqlalchemy import text

from f8a_jobs.api.auth import actor, identities
from f8a_jobs.api.context import Response, engine, leadership, reply, role
from f8a_jobs.services import service_state
from f8a_jobs.storage.fencing import current_term


def get_liveness() -> Response:
    """Alive unless a thread that should run here has died (a restart is the cure)."""
    contender = leadership()
    problems = contender.problems() if contender else []
    if problems:
        return reply({"alive": False, "dead_threads": problems}, 503)
    return reply({"alive": True})


def get_readiness() -> Response:
    """Ready when the database answers. A users file that was refused does not make the
    service unready (the last good one is in force), but readiness says why it was."""
    try:
        with engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return reply({"ready": False, "error": f"database unreachable: {type(exc).__name__}"}, 503)
    problem = identities().problem
    return reply({"ready": True, **({"users_file": problem} if problem else {})})


def get_state() -> Response:
    return reply(_state(service_state.get_state(engine())))


def put_state(state: str, reason: str | None = None) -> Response:
    return reply(_state(service_state.set_state(engine(), state, actor(reason))))


def _state(state: str) -> dict[str, object]:
    with engine().connect() as connection:
        term = current_term(connection)
    since = term["since"].isoformat() if term["since"] else None
    return {"state": state, "scheduler": role(), "leader": {**term, "since": since}}
