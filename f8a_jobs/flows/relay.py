"""Moves pending flows from the outbox to the dispatcher, on the leader, with retries.

A batch is claimed under the term's fence, so a process that lost the lead delivers nothing.
While the broker is unavailable the relay backs off and retries; a flow the dispatcher refuses
for good is marked ``failed`` with the reason, and the flows after it go on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine

from f8a_jobs import wakeups
from f8a_jobs.flows import outbox
from f8a_jobs.flows.base import DeliveryFailed, Dispatcher
from f8a_jobs.json_values import storable_text
from f8a_jobs.runs.lifecycle import LostLeadership, fence

log = logging.getLogger(__name__)


class Relay:
    def __init__(
        self,
        engine: Engine,
        dispatcher: Dispatcher,
        epoch: int,
        on_lost: Callable[[], None] = lambda: None,
        batch: int = 500,
        idle_wait: float = 5.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.epoch = epoch
        self.on_lost = on_lost
        self.batch = batch
        self.idle_wait = idle_wait
        self.max_backoff = max_backoff
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="f8a-jobs-relay", daemon=True)

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def start(self) -> None:
        wakeups.subscribe(self._on_wakeup)
        self._thread.start()

    def stop(self) -> None:
        wakeups.unsubscribe(self._on_wakeup)
        self._stop.set()
        self._wake.set()
        try:
            if self._thread.is_alive():
                self._thread.join(timeout=10)
        finally:
            self.dispatcher.close()

    def wakeup(self) -> None:
        self._wake.set()

    def _on_wakeup(self, topic: str) -> None:
        if topic == wakeups.FLOWS:
            self._wake.set()

    def _loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                delivered = self.deliver_batch()
            except LostLeadership as lost:
                log.warning("%s: delivering no more flows", lost)
                self.on_lost()
                return
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
        sends only the rest; a refused flow is marked failed and the rest are tried at once.
        """
        with self.engine.begin() as connection:
            fence(connection, self.epoch)
            flows = outbox.claim_pending(connection, self.batch)
            claimed = len(flows)
            while flows:
                try:
                    self.dispatcher.send(flows)
                except DeliveryFailed as failure:
                    self._mark(connection, flows[: failure.delivered])
                    if not failure.refused:
                        connection.commit()
                        raise
                    self._refuse(connection, flows[failure.delivered], failure.cause)
                    flows = flows[failure.delivered + 1 :]
                    continue
                self._mark(connection, flows)
                flows = []
        return claimed

    def _mark(self, connection: Connection, flows: list[dict[str, Any]]) -> None:
        if flows:
            outbox.mark(
                connection, [flow["id"] for flow in flows], self.dispatcher.delivered_status
            )

    def _refuse(self, connection: Connection, flow: dict[str, Any], cause: BaseException) -> None:
        reason = storable_text(f"{type(cause).__name__}: {cause}", 2000)
        log.error(
            "flow %s (%s) refused for good: %s", outbox.flow_key(flow), flow["flow_name"], reason
        )
        outbox.mark(connection, [flow["id"]], outbox.FAILED, reason)
