"""Wake the firing scheduler after a change instead of making it poll.

On PostgreSQL a change sends ``NOTIFY f8a_jobs`` in its own transaction, so every process's
leader hears it once the change is committed; in-process listeners (SQLite, the flow relay, and
the firing scheduler for ``ENDED``) are called after the commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text

from f8a_jobs.storage.db import is_postgresql

CHANNEL = "f8a_jobs"
JOBS = "jobs"
STATE = "state"
FLOWS = "flows"
RUNS = "runs"
TASKS = "tasks"  # a remote worker reported how a workflow task's try ended
ALL = frozenset({JOBS, STATE, FLOWS, RUNS, TASKS})
# A run ended that a queued run of its job may wait for (a backfill's next slot, a buffered
# run). Heard in-process only, never NOTIFYed: the leader records the ends of the runs it runs,
# and its claimer starts the waiting run; a worker's ends wake the leader about RUNS anyway.
ENDED = "ended"

log = logging.getLogger(__name__)
_listeners: list[Callable[[str], None]] = []
_lock = threading.Lock()


def subscribe(listener: Callable[[str], None]) -> None:
    with _lock:
        _listeners.append(listener)


def unsubscribe(listener: Callable[[str], None]) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def publish_local(topic: str) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(topic)
        except Exception:
            log.exception("wake-up listener failed for %s", topic)


@contextmanager
def changing(engine: Engine, topic: str | None) -> Iterator[Connection]:
    """A transaction whose commit wakes the leader about ``topic`` (None: about nothing), and
    about what the work inside it asked for (``request``)."""
    with engine.begin() as connection:
        yield connection
        topics = ({topic} if topic else set()) | take_requested(connection)
        if is_postgresql(engine):
            for name in sorted(topics - {ENDED}):
                connection.execute(
                    text("SELECT pg_notify(:channel, :topic)"), {"channel": CHANNEL, "topic": name}
                )
    for name in sorted(topics):
        publish_local(name)


def request(connection: Connection, topic: str) -> None:
    """Ask for a wake-up about ``topic`` once this connection's transaction commits."""
    connection.info.setdefault(REQUESTED, set()).add(topic)


def take_requested(connection: Connection) -> set[str]:
    return set(connection.info.pop(REQUESTED, ()))


def publish_requested(connection: Connection) -> None:
    """After a commit made outside ``changing``: the wake-ups its work asked for."""
    for topic in sorted(take_requested(connection)):
        publish_local(topic)


REQUESTED = "f8a_jobs_wake"
