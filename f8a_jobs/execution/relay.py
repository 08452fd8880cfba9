"""Moves pending flows from the outbox to the dispatcher, on the leader, with retries.

A batch is claimed under the term's fence, so a process that lost the lead delivers nothing.
While the broker is unavailable the relay backs off and retries; a flow the dispatcher refuses
for good is marked ``failed`` with the reason, and the flows after it go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine

from f8a_jobs.core.json_values import storable_text
from f8a_jobs.core.states import FlowStatus
from f8a_jobs.execution.loop import Loop
from f8a_jobs.services.flows import outbox
from f8a_jobs.services.flows.base import DeliveryFailed, Dispatcher
from f8a_jobs.storage import wakeups
from f8a_jobs.storage.fencing import fence

log = logging.getLogger(__name__)
FIRST_BACKOFF = 0.5


class Relay(Loop):
    what = "flow delivery"
    on_lost_log = "delivering no more flows"

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
        super().__init__("f8a-jobs-relay", on_lost)
        self.engine = engine
        self.dispatcher = dispatcher
        self.epoch = epoch
        self.batch = batch
        self.idle_wait = idle_wait
        self.max_backoff = max_backoff
        self._backoff = FIRST_BACKOFF
        self._more = True  # the last batch was full: deliver the next at once

    def start(self) -> None:
        wakeups.subscribe(self._on_wakeup)
        super().start()

    def stop(self, timeout: float = 10.0) -> None:
        wakeups.unsubscribe(self._on_wakeup)
        try:
            super().stop(timeout)
        finally:
            self.dispatcher.close()

    def _on_wakeup(self, topic: str) -> None:
        if topic == wakeups.FLOWS:
            self.wakeup()

    def wait_time(self) -> float:
        return 0.0 if self._more else self.idle_wait

    def step(self) -> None:
        self._more = self.deliver_batch() >= self.batch
        self._backoff = FIRST_BACKOFF

    def failed(self, error: Exception) -> float:
        delay, self._backoff = self._backoff, min(self._backoff * 2, self.max_backoff)
        log.warning("flow delivery failed (%s); retrying in %.1f s", error, delay)
        self._more = True
        return delay

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
        outbox.mark(connection, [flow["id"]], FlowStatus.FAILED, reason)
