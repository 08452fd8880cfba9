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
from datetime import datetime

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
    about what the work inside it asked for (``request``, ``request_jobs_due``)."""
    with engine.begin() as connection:
        try:
            yield connection
        except BaseException:
            forget(connection)  # the pooled connection must not carry them to its next user
            raise
        topics = ({topic} if topic else set()) | take_requested(connection)
        dues = connection.info.pop(DUES, None)
        if dues is not None and JOBS not in topics:
            topics.add(_jobs_due(dues))
        if is_postgresql(engine):
            for name in sorted(topics - {ENDED}):
                connection.execute(
                    text("SELECT pg_notify(:channel, :topic)"), {"channel": CHANNEL, "topic": name}
                )
    for name in sorted(topics):
        publish_local(name)


def forget(connection: Connection) -> None:
    """Drop the wake-ups this connection's transaction asked for: it rolls back."""
    connection.info.pop(REQUESTED, None)
    connection.info.pop(DUES, None)


def request(connection: Connection, topic: str) -> None:
    """Ask for a wake-up about ``topic`` once this connection's transaction commits."""
    connection.info.setdefault(REQUESTED, set()).add(topic)


def request_jobs_due(connection: Connection, due: datetime | None) -> None:
    """Ask for a wake-up about jobs this connection's transaction adds or changes, saying
    when the earliest of them runs (None: none runs): a leader whose scheduler wakes before
    then anyway, and reads every job again, is not woken for them (a burst of new jobs would
    cost a scheduling pass each)."""
    connection.info.setdefault(DUES, []).append(due)


def _jobs_due(dues: list[datetime | None]) -> str:
    """``jobs@<the earliest due>``; ``jobs@`` when none of them runs."""
    earliest = min((due for due in dues if due is not None), default=None)
    return f"{JOBS}{AT}{earliest.isoformat() if earliest else ''}"


def topic_of(name: str) -> str:
    """The topic a wake-up names: ``jobs@…`` is about ``jobs``."""
    return name.partition(AT)[0]


def jobs_wake(topics: frozenset[str], planned: datetime | None) -> bool:
    """Whether ``topics`` must wake a scheduler that plans to wake at ``planned`` (None: it
    plans nothing, or is reading the jobs now): a plain ``jobs`` says nothing of when they run,
    and always does; ``jobs@<when>`` does when ``when`` comes before ``planned``."""
    if JOBS in topics:
        return True
    dues = [name.partition(AT)[2] for name in topics if topic_of(name) == JOBS]
    times = [datetime.fromisoformat(due) for due in dues if due]
    if not times:
        return False  # no jobs changed, or none of them runs
    return planned is None or min(times) < planned


def take_requested(connection: Connection) -> set[str]:
    return set(connection.info.pop(REQUESTED, ()))


def publish_requested(connection: Connection) -> None:
    """After a commit made outside ``changing``: the wake-ups its work asked for."""
    for topic in sorted(take_requested(connection)):
        publish_local(topic)


REQUESTED = "f8a_jobs_wake"
DUES = "f8a_jobs_jobs_due"
AT = "@"  # "jobs@2027-01-01T00:00:00+00:00": jobs changed, the earliest runs then
