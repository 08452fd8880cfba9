"""Moves pending flows from the outbox to the dispatcher, on the leader, with retries."""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Connection, Engine

from f8a_jobs import wakeups
from f8a_jobs.flows import outbox
from f8a_jobs.flows.base import DeliveryFailed, Dispatcher

log = logging.getLogger(__name__)


class Relay:
    """A thread that delivers the outbox in batches; a failed batch is retried with backoff."""

    def __init__(
        self,
        engine: Engine,
        dispatcher: Dispatcher,
        batch: int = 500,
        idle_wait: float = 5.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.batch = batch
        self.idle_wait = idle_wait
        self.max_backoff = max_backoff
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="f8a-jobs-relay", daemon=True)

    def start(self) -> None:
        wakeups.subscribe(self._on_wakeup)
        self._thread.start()

    def stop(self) -> None:
        wakeups.unsubscribe(self._on_wakeup)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.dispatcher.close()

    def _on_wakeup(self, topic: str) -> None:
        if topic == wakeups.FLOWS:
            self._wake.set()

    def _loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                delivered = self.deliver_batch()
            except Exception as error:
                log.warning("flow delivery failed (%s); retrying in %.1f s", error, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = 0.5
            if delivered < self.batch:
                self._wake.wait(self.idle_wait)
                self._wake.clear()

    def deliver_batch(self) -> int:
        """Deliver up to one batch, marking rows in the transaction that claimed them.

        When delivery stops midway, the rows delivered so far are still marked, so a retry
        sends only the rest.
        """
        with self.engine.begin() as connection:
            flows = outbox.claim_pending(connection, self.batch)
            if not flows:
                return 0
            try:
                self.dispatcher.send(flows)
            except DeliveryFailed as failure:
                self._mark(connection, flows[: failure.delivered])
                connection.commit()
                raise
            self._mark(connection, flows)
        return len(flows)

    def _mark(self, connection: Connection, flows: list[dict[str, Any]]) -> None:
        if flows:
            outbox.mark(
                connection, [flow["id"] for flow in flows], self.dispatcher.delivered_status
            )
