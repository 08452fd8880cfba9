"""Leadership: every firing-capable process contends for the leader lock; the holder fires jobs.

Each term starts by bumping the leadership epoch, which fences the previous holder out of every
write that starts something. The leader waits for wake-ups (LISTEN/NOTIFY on PostgreSQL,
in-process calls on SQLite) or the poll interval, then applies the service state, does the
housekeeping (failing the runs of processes that are gone, retention) and wakes its parts.

A term ends when the lock's session is lost, another term fences this one, a part's thread has
died, or the process stops. Ending it stops starting things first and releases the lock at
once, so a standby can lead while the runs in flight here end (up to
``F8A_JOBS_SHUTDOWN_TIMEOUT``); then the term's threads and connections go.
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

from f8a_jobs import metrics, service_state, wakeups
from f8a_jobs.runs import lifecycle, retention
from f8a_jobs.runs.writer import RunWriter
from f8a_jobs.scheduler import FiringScheduler
from f8a_jobs.schedules import utcnow
from f8a_jobs.settings import Settings
from f8a_jobs.storage.db import is_postgresql, term_engine
from f8a_jobs.storage.locks import LeaderLock

log = logging.getLogger(__name__)
RETENTION_EVERY = 60.0  # seconds between retention batches


class Leadership:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.lock = LeaderLock(engine)
        # Runs this process started are recorded by it even after its term ends, and while
        # the database is away: the writer lives as long as the process.
        self.writer = RunWriter(engine)
        self.scheduler: FiringScheduler | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._topics: set[str] = set()
        self._topics_lock = threading.Lock()
        self._lock_checked = 0.0
        self._thread = threading.Thread(
            target=self._contend, name="f8a-jobs-leadership", daemon=True
        )

    @property
    def role(self) -> str:
        return "leader" if self.scheduler is not None else "standby"

    def problems(self) -> list[str]:
        """Threads that should run here but have died (what liveness reports)."""
        if self._stop.is_set():
            return []
        dead = [
            name
            for name, thread in (("leadership", self._thread), ("run-writer", self.writer.thread))
            if not thread.is_alive()
        ]
        scheduler = self.scheduler
        return dead + (scheduler.dead_threads() if scheduler else [])

    def start(self) -> None:
        wakeups.subscribe(self._on_local_wakeup)
        self.writer.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=self.settings.shutdown_timeout + 5)
        wakeups.unsubscribe(self._on_local_wakeup)
        self.writer.stop()
        self.lock.close()

    def _contend(self) -> None:
        while not self._stop.is_set():
            try:
                if self.lock.try_acquire():
                    self._lead()
            except Exception:
                log.exception("leadership failed; contending again")
                self.lock.release()
            self._stop.wait(self.settings.leader_poll_interval)

    def _lead(self) -> None:
        engine = term_engine(self.settings.database_url)
        try:
            with engine.begin() as connection:
                epoch = lifecycle.begin_term(connection, self.owner, utcnow())
            scheduler = FiringScheduler(
                engine, self.settings, epoch, self.owner, self._wake.set, self.writer
            )
            scheduler.start(paused=service_state.get_state(engine) == "paused")
        except Exception:
            engine.dispose()
            raise
        log.info("this process leads (term %d): firing jobs", epoch)
        metrics.leading(True)
        self.scheduler = scheduler
        self._listen("LISTEN")
        term = Housekeeping(engine, self.settings, epoch)
        try:
            topics = wakeups.ALL
            while self._leading(scheduler):
                self._tick(scheduler, term, topics)
                topics = self._wait_for_wakeup()
        finally:
            self.scheduler = None
            metrics.leading(False)
            scheduler.stop_starting()
            self._listen("UNLISTEN")
            self.lock.release()  # a standby may lead now, while our runs in flight end
            scheduler.drain(self.settings.shutdown_timeout)
            engine.dispose()
            log.info("this process stopped leading (term %d)", epoch)

    def _leading(self, scheduler: FiringScheduler) -> bool:
        if self._stop.is_set() or scheduler.lost.is_set() or not self._lock_held():
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
        try:
            if wakeups.STATE in topics:
                scheduler.set_paused(service_state.get_state(self.engine) == "paused")
            term.run()
        except lifecycle.LostLeadership:
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
        with self._topics_lock:
            self._topics.add(topic)
        self._wake.set()

    def _wait_for_wakeup(self) -> frozenset[str]:
        """The topics of the changes that woke us; all of them when none did."""
        timeout = self.settings.leader_poll_interval
        connection: Any = self.lock.connection
        if connection is None or not is_postgresql(self.engine):
            woken = self._wake.wait(timeout)
            self._wake.clear()
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


class Housekeeping:
    """A term's periodic chores: fail the runs of processes that are gone; retention."""

    def __init__(self, engine: Engine, settings: Settings, epoch: int) -> None:
        self.engine = engine
        self.settings = settings
        self.epoch = epoch
        self.started = time.monotonic()
        self.last_orphans = 0.0
        self.last_retention = 0.0

    def run(self) -> None:
        now = time.monotonic()
        # A live process heartbeats within a lease of this term's start (even after the
        # database was down): before that, a stale heartbeat proves nothing.
        if now - self.started > self.settings.run_lease and (
            now - self.last_orphans >= self.settings.leader_poll_interval
        ):
            self.last_orphans = now
            with self.engine.begin() as connection:
                failed = lifecycle.fail_orphans(
                    connection, self.epoch, self.settings.run_lease, utcnow()
                )
            if failed:
                log.warning("failed %d runs whose process is gone", failed)
        if now - self.last_retention > RETENTION_EVERY:
            self.last_retention = now
            self.retain()

    def retain(self) -> None:
        days, keep = self.settings.run_retention_days, self.settings.run_keep_last
        with self.engine.begin() as connection:
            runs = retention.delete_old_runs(connection, days, keep, utcnow())
            flows = retention.delete_old_flows(connection, days, utcnow())
        if runs or flows:
            log.info(
                "retention: deleted %d runs and %d flows older than %g days", runs, flows, days
            )
