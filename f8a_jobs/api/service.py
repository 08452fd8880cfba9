"""Operations about the service itself: probes and the firing state."""

from __future__ import annotations

from sqlalchemy import text

from f8a_jobs import service_state
from f8a_jobs.api.context import Response, engine, reply, role


def get_liveness() -> Response:
    return reply({"alive": True})


def get_readiness() -> Response:
    """Ready when the database answers."""
    try:
        with engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return reply({"ready": False, "error": f"database unreachable: {type(exc).__name__}"}, 503)
    return reply({"ready": True})


def get_state() -> Response:
    return reply({"state": service_state.get_state(engine()), "scheduler": role()})


def put_state(state: str) -> Response:
    return reply({"state": service_state.set_state(engine(), state), "scheduler": role()})
