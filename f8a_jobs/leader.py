"""Leadership: every service process contends for the leader lock; the holder fires jobs.

The leader waits for wake-ups (LISTEN/NOTIFY on PostgreSQL, in-process calls on SQLite) or
the poll interval, then applies the service state, starts queued runs and wakes APScheduler.
When the holder dies, the database releases its lock and a standby takes over within one poll
interval.
"""

from __future__ import annotations

import logging
import select
import threading
from typing import Any

from sqlalchemy import Engine

from f8a_jobs import service_state, wakeups
from f8a_jobs.scheduler import FiringScheduler
from f8a_jobs.settings import Settings
from f8a_jobs.storage.db import is_postgresql
from f8a_jobs.storage.locks import LeaderLock

log = logging.getLogger(__name__)


class Leadership:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.lock = LeaderLock(engine)
        self.scheduler: FiringScheduler | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(
            target=self._contend, name="f8a-jobs-leadership", daemon=True
        )

    @property
    def role(self) -> str:
        return "leader" if self.scheduler is not None else "standby"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=60)

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
        log.info("this process is the leader: firing jobs")
        scheduler = FiringScheduler(self.engine, self.settings)
        scheduler.start(paused=service_state.get_state(self.engine) == "paused")
        self.scheduler = scheduler
        wakeups.subscribe(self._on_local_wakeup)
        if self.lock.connection is not None:
            with self.lock.connection.cursor() as cursor:
                cursor.execute(f"LISTEN {wakeups.CHANNEL}")
        try:
            while not self._stop.is_set() and self.lock.still_held():
                scheduler.set_paused(service_state.get_state(self.engine) == "paused")
                scheduler.run_queued()
                scheduler.wakeup()
                self._wait_for_wakeup()
        finally:
            wakeups.unsubscribe(self._on_local_wakeup)
            self.scheduler = None
            scheduler.stop()
            self.lock.release()
            log.info("this process stopped leading")

    def _on_local_wakeup(self, topic: str) -> None:
        if topic != wakeups.FLOWS:
            self._wake.set()

    def _wait_for_wakeup(self) -> None:
        timeout = self.settings.leader_poll_interval
        connection: Any = self.lock.connection
        if connection is None or not is_postgresql(self.engine):
            self._wake.wait(timeout)
            self._wake.clear()
            return
        readable, _, _ = select.select([connection], [], [], timeout)
        if readable:
            connection.poll()
            connection.notifies.clear()
