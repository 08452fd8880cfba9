"""The default dispatcher: no broker; a flow is delivered once it is logged and kept.

One INFO line per batch says how many flows of which names, for which job and run: a run may
emit ten thousand flows, and a line each would bury the log. Each flow with its arguments is
logged at DEBUG.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from f8a_jobs.services.flows.base import Dispatcher
from f8a_jobs.services.flows.outbox import flow_key

log = logging.getLogger(__name__)
NAMED_AT_MOST = 5  # jobs a summary names; more are counted


class EmbeddedDispatcher(Dispatcher):
    """Marks flows delivered; they stay in the outbox (``GET /flows``) for anyone to pick up."""

    delivered_status = "delivered"

    def send(self, flows: list[dict[str, Any]]) -> None:
        if not flows:
            return
        if log.isEnabledFor(logging.DEBUG):
            for flow in flows:
                log.debug(
                    "flow %s %s for job %s: %s",
                    flow["flow_name"],
                    flow_key(flow),
                    flow["job_id"],
                    flow["arguments"],
                )
        log.info("delivered %s", summary(flows))


def summary(flows: list[dict[str, Any]]) -> str:
    """'3 flows (bayesianFlow × 2, otherFlow × 1) of job nightly, run 0189…', or of how many
    jobs (the first few named) and runs."""
    names = ", ".join(
        f"{name} × {count}" for name, count in Counter(f["flow_name"] for f in flows).items()
    )
    jobs = sorted({str(flow["job_id"]) for flow in flows})
    runs = {flow["run_id"] for flow in flows} - {None}
    count = "1 flow" if len(flows) == 1 else f"{len(flows)} flows"
    if len(jobs) == 1:
        whose = f"job {jobs[0]}"
    else:
        named = ", ".join(jobs[:NAMED_AT_MOST]) + (", …" if len(jobs) > NAMED_AT_MOST else "")
        whose = f"{len(jobs)} jobs ({named})"
    if len(runs) == 1:
        whose += f", run {next(iter(runs))}"
    elif runs:
        whose += f", {len(runs)} runs"
    return f"{count} ({names}) of {whose}"
