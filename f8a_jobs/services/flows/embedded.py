"""The default dispatcher: no broker; a flow is delivered once it is logged and kept."""

from __future__ import annotations

import logging
from typing import Any

from f8a_jobs.services.flows.base import Dispatcher
from f8a_jobs.services.flows.outbox import flow_key

log = logging.getLogger(__name__)


class EmbeddedDispatcher(Dispatcher):
    """Marks flows delivered; they stay in the outbox (``GET /flows``) for anyone to pick up."""

    delivered_status = "delivered"

    def send(self, flows: list[dict[str, Any]]) -> None:
        for flow in flows:
            log.info(
                "flow %s %s for job %s: %s",
                flow["flow_name"],
                flow_key(flow),
                flow["job_id"],
                flow["arguments"],
            )
