"""Logging: plain lines, or with ``F8A_JOBS_LOG_FORMAT=json`` one JSON object a line that
names the ``job_id``, ``run_id`` and ``task`` it is about, where one applies."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

TEXT_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
JSON_FIELDS = ("asctime", "process", "name", "levelname", "message")
CONTEXT_FIELDS = ("job_id", "run_id", "task")

_context: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "f8a_jobs_log", default=()
)


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter(list(JSON_FIELDS), timestamp=False))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)


@contextmanager
def about(**fields: str | None) -> Iterator[None]:
    """Log records made inside name these (``job_id``, ``run_id``, ``task``)."""
    given = {name: value for name, value in fields.items() if value is not None}
    token = _context.set(tuple({**dict(_context.get()), **given}.items()))
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True
