"""What operation functions need from the process: the engine and the leadership."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from f8a_jobs.execution.leader import Leadership

_engine: Engine | None = None
_leadership: Leadership | None = None


def install(engine: Engine, leadership: Leadership | None) -> None:
    global _engine, _leadership
    _engine, _leadership = engine, leadership


def engine() -> Engine:
    if _engine is None:
        raise RuntimeError("create_app() has not run in this process")
    return _engine


def role() -> str:
    """Whether this server (any of its processes) leads: ``leader`` or ``standby``."""
    return _leadership.server_role if _leadership else "standby"


def leadership() -> Leadership | None:
    return _leadership


Response = tuple[dict[str, Any], int, dict[str, str]]


def reply(body: dict[str, Any], status: int = 200) -> Response:
    """A JSON response; the content type is explicit because errors are problem+json."""
    return body, status, {"Content-Type": "application/json"}
