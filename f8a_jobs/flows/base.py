"""The dispatcher contract: deliver a batch of outbox rows to whatever runs flows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class Dispatcher(ABC):
    """Delivers flows. ``send`` raises to say "not delivered, try again later"."""

    #: the outbox status a delivered row gets
    delivered_status = "sent"

    @abstractmethod
    def send(self, flows: list[dict[str, Any]]) -> None:
        """Deliver every row of ``flows`` (outbox rows as dicts) or raise."""

    def close(self) -> None:  # noqa: B027 - an optional hook
        """Release connections; called when the relay stops."""
