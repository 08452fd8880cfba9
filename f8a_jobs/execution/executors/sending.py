"""Messages on their way to the broker: each run or try the leader sends to a worker, kept
until it ends. The broker down, they wait and go with backoff once it is back; a message no
worker took for long is sent again (the broker may have lost it), and workers drop a message
whose try is no longer waiting, so a duplicate never runs."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery

from f8a_jobs.execution.executors.messages import HARD_LIMIT_GRACE
from f8a_jobs.services.runs import ClaimedRun
from f8a_jobs.services.workflows.tries import TryOutcome

log = logging.getLogger(__name__)
MAX_BACKOFF = 30.0


@dataclass
class Sent:
    """A message to send, or sent and not ended yet."""

    task_name: str
    task_id: str
    message: dict[str, Any]
    queue: str
    limit: float | None  # the soft time limit
    sent_at: float | None = None  # monotonic
    sends: int = 0
    run: ClaimedRun | None = None
    sink: Callable[[TryOutcome], None] | None = None

    def due_again(self, now: float, after: float) -> bool:
        """No worker took it for long: the broker may have lost it (twice as long each time)."""
        return self.sent_at is not None and now - self.sent_at > after * 2 ** (self.sends - 1)


class Sender:
    """The messages not sent yet, sent in order with backoff while the broker is down."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._unsent: deque[Sent] = deque()
        self._backoff = 0.0
        self.send_at = 0.0  # monotonic: no sending before (backing off)

    @property
    def pending(self) -> bool:
        with self._lock:
            return bool(self._unsent)

    def add(self, items: list[Sent]) -> None:
        with self._lock:
            self._unsent.extend(items)

    def resend(self, item: Sent, after: float) -> None:
        log.warning("no worker took %s for %g s: sending it again", item.task_id, after)
        self.add([item])

    def send(self) -> None:
        """Send what waits, in order; on a broker error, back off (doubling, up to 30 s)."""
        with self._lock:
            batch = list(self._unsent)
        if not batch or time.monotonic() < self.send_at:
            return
        sent = 0
        try:
            with self.app.producer_or_acquire() as producer:
                for item in batch:
                    self._publish(item, producer)
                    sent += 1
            self._backoff = 0.0
        except Exception as error:
            self._backoff = min(MAX_BACKOFF, max(0.5, self._backoff * 2))
            self.send_at = time.monotonic() + self._backoff
            log.warning(
                "sending %d runs to the broker failed (%s); trying again in %g s",
                len(batch) - sent,
                error,
                self._backoff,
            )
        finally:
            with self._lock:
                for _ in range(sent):
                    self._unsent.popleft()

    def _publish(self, item: Sent, producer: Any) -> None:
        limits = {}
        if item.limit:
            limits = {"soft_time_limit": item.limit, "time_limit": item.limit + HARD_LIMIT_GRACE}
        self.app.send_task(
            item.task_name,
            args=[item.message],
            task_id=item.task_id,
            queue=item.queue,
            producer=producer,
            retry=False,
            argsrepr=item.task_id,  # Celery would render the whole message, for logs only
            kwargsrepr="{}",
            **limits,
        )
        item.sent_at = time.monotonic()
        item.sends += 1

    def revoke(self, task_ids: list[str]) -> None:
        """Tell workers to drop messages whose run or try ended while they waited."""
        if not task_ids:
            return
        try:
            self.app.control.revoke(task_ids)
        except Exception as error:  # workers drop them anyway: their rows say so
            log.info("revoking %d messages failed (%s)", len(task_ids), error)
