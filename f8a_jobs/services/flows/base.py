"""The dispatcher contract: deliver a batch of outbox rows to whatever runs flows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class DeliveryFailed(Exception):
    """Delivery stopped after the first ``delivered`` flows of a batch (in order).

    ``refused``: the next flow itself was refused and will never be accepted as it is (too
    large, say); otherwise the broker is unavailable and the rest should be tried again later.
    """

    def __init__(self, delivered: int, cause: BaseException, refused: bool = False) -> None:
        super().__init__(f"delivery failed after {delivered} flows: {cause!r}")
        self.delivered = delivered
        self.cause = cause
        self.refused = refused


class Dispatcher(ABC):
    """Delivers flows, in order; raises ``DeliveryFailed`` saying how far it got."""

    #: the outbox status a delivered row gets
    delivered_status = "sent"

    @abstractmethod
    def send(self, flows: list[dict[str, Any]]) -> None:
        """Deliver every row of ``flows`` (outbox rows as dicts) or raise ``DeliveryFailed``."""

    def close(self) -> None:  # noqa: B027 - an optional hook
        """Release connections; called when the relay stops."""
