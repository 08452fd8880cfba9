"""Leadership: every firing-capable process contends for the leader lock; the holder fires jobs.

Each term starts by bumping the leadership epoch, which fences the previous holder out of every
write that starts something. The leader waits for wake-ups (LISTEN/NOTIFY on PostgreSQL,
in-process calls on SQLite) or the poll interval, then applies the service state, does the
housekeeping (settling the runs of processes that are gone, retention) and wakes its parts.

A term ends when the lock's session is lost, another term fences this one, a part's thread has
died, or the process stops. Ending it stops starting things first and releases the lock at
once, so a standby can lead while the runs in flight here end (up to
``F8A_JOBS_SHUTDOWN_TIMEOUT``); then the term's threads and connections go.

A server's processes (gunicorn's workers) share a ``ServerMark``, so any of them can say
whether *this server* leads.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from typing import Any

from sqlalchemy import Engine

from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.settings import Settings
from f8a_jobs.core.states import JobState
from f8a_jobs.execution import metrics
from f8a_jobs.execution.housekeeping import Housekeeping
from f8a_jobs.execution.loop import Loop
from f8a_jobs.execution.recording import RunWriter
from f8a_jobs.execution.scheduler import FiringScheduler
from f8a_jobs.execution.server_mark import ServerMark
from f8a_jobs.services import service_state
from f8a_jobs.storage import wakeups
from f8a_jobs.storage.db import is_postgresql, term_engine
from f8a_jobs.storage.fencing import LostLeadership, begin_term
from f8a_jobs.storage.locks import LeaderLock

log = logging.getLogger(__name__)


class Leadership(Loop):
    what = "leadership"

    def __init__(
        self, engine: Engine, settings: Settings, server: ServerMark | None = None
    ) -> None:
        super().__init__("f8a-jobs-leadership")
        self.engine = engine
        self.settings = settings
        self.server = server or ServerMark()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.lock = LeaderLock(engine)
        # Runs this process started are recorded by it even after its term ends, and while
        # the database is away: the writer lives as long as the process.
        self.writer = RunWriter(engine)
        self.scheduler: FiringScheduler | None = None
        self._woken = threading.Event()  # a change this term should hear of (SQLite), or a stop
        self._topics: set[str] = set()
        self._topics_lock = threading.Lock()
        self._lock_checked = 0.0
        self._contended = False

    @property
    def role(self) -> str:
        """``leader`` while this process leads, else ``standby``."""
        return "leader" if self.scheduler is not None else "standby"

    @property
    def server_role(self) -> str:
        """``leader`` while a process of this server leads, else ``standby``."""
        return "leader" if self.scheduler is not None or self.server.leads else "standby"

    def problems(self) -> list[str]:
        """Threads that should run here but have died (what liveness reports)."""
        if self.stopped:
            return []
        dead = [
            name
            for name, thread in (("leadership", self.thread), ("run-writer", self.writer.thread))
            if not thread.is_alive()
        ]
        scheduler = self.scheduler
        return dead + (scheduler.dead_threads() if scheduler else [])

    def start(self) -> None:
        wakeups.subscribe(self._on_local_wakeup)
        self.writer.start()
        super().start()

    def stop(self, timeout: float | None = None) -> None:
        self._woken.set()
        super().stop(self.settings.shutdown_timeout + 5 if timeout is None else timeout)
        wakeups.unsubscribe(self._on_local_wakeup)
        self.writer.stop()
        self.lock.close()

    def wait_time(self) -> float:
        """Contend at once, then every poll interval."""
        first, self._contended = not self._contended, True
        return 0.0 if first else self.settings.leader_poll_interval

    def step(self) -> None:
        if self.lock.try_acquire():
            self._lead()

    def failed(self, error: Exception) -> float:
        log.exception("leadership failed; contending again", exc_info=error)
        self.lock.release()
        return 0.0

    def lost(self, error: LostLeadership) -> None:
        log.warning("%s; contending again", error)
        self.lock.release()

    def _lead(self) -> None:
        engine = term_engine(self.settings.database_url)
        try:
            with engine.begin() as connection:
                epoch = begin_term(connection, self.owner, utcnow())
            scheduler = FiringScheduler(
                engine, self.settings, epoch, self.owner, self._woken.set, self.writer
            )
            scheduler.start(paused=service_state.get_state(engine) == JobState.PAUSED)
        except Exception:
            engine.dispose()
            raise
        log.info("this process leads (term %d): firing jobs", epoch)
        self._begun(scheduler)
        term = Housekeeping(engine, self.settings, epoch)
        try:
            topics = wakeups.ALL
            while self._leading(scheduler):
                self._tick(scheduler, term, topics)
                topics = self._wait_for_wakeup()
        finally:
            self._ended()
            scheduler.stop_starting()
            self._listen("UNLISTEN")
            self.lock.release()  # a standby may lead now, while our runs in flight end
            scheduler.drain(self.settings.shutdown_timeout)
            engine.dispose()
            log.info("this process stopped leading (term %d)", epoch)

    def _begun(self, scheduler: FiringScheduler) -> None:
        metrics.leading(True)
        self.server.leading(os.getpid())
        self.scheduler = scheduler
        self._listen("LISTEN")

    def _ended(self) -> None:
        self.scheduler = None
        self.server.gone(os.getpid())
        metrics.leading(False)

    def _leading(self, scheduler: FiringScheduler) -> bool:
        if self.stopped or scheduler.lost.is_set() or not self._lock_held():
            return False
        dead = scheduler.dead_threads()
        if dead:
            log.error("threads of this term died (%s): ending the term", ", ".join(dead))
        return not dead

    def _lock_held(self) -> bool:
        """Ask the database at most once a poll interval: a busy term wakes hundreds of times
        a second, and a lost session shows sooner anyway (its socket fails the next wait),
        while the epoch fences every write."""
        now = time.monotonic()
        if now - self._lock_checked < self.settings.leader_poll_interval:
            return True
        self._lock_checked = now
        return self.lock.still_held()

    def _tick(self, scheduler: FiringScheduler, term: Housekeeping, topics: frozenset[str]) -> None:
        """Wake only the parts a change concerns (a burst of new jobs must not cost a claim
        and a relay transaction each); a quiet poll interval wakes them all."""
        self.server.leading(os.getpid())
        try:
            if wakeups.STATE in topics:
                scheduler.set_paused(service_state.get_state(self.engine) == JobState.PAUSED)
            term.run()
        except LostLeadership:
            scheduler.lost.set()
        except Exception as error:
            log.warning("housekeeping failed (%s); trying again next tick", error)
        scheduler.wakeup(topics)

    def _listen(self, verb: str) -> None:
        connection: Any = self.lock.connection
        if connection is None or not is_postgresql(self.engine):
            return
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"{verb} {wakeups.CHANNEL}")
            connection.notifies.clear()
        except Exception as error:
            log.warning("%s failed (%s)", verb, error)

    def _on_local_wakeup(self, topic: str) -> None:
        if wakeups.topic_of(topic) not in wakeups.ALL:  # ENDED: the term's scheduler hears it
            return
        with self._topics_lock:
            self._topics.add(topic)
        self._woken.set()

    def _wait_for_wakeup(self) -> frozenset[str]:
        """The topics of the changes that woke us; all of them when none did."""
        timeout = self.settings.leader_poll_interval
        connection: Any = self.lock.connection
        if connection is None or not is_postgresql(self.engine):
            woken = self._woken.wait(timeout)
            self._woken.clear()
            with self._topics_lock:
                topics, self._topics = frozenset(self._topics), set()
            return topics if woken and topics else wakeups.ALL
        readable, _, _ = select.select([connection], [], [], timeout)
        if not readable:
            return wakeups.ALL
        connection.poll()
        topics = frozenset(notify.payload for notify in connection.notifies)
        connection.notifies.clear()
        return topics or wakeups.ALL
