"""``GET /flows``: the flows jobs dispatched, newest first."""

from __future__ import annotations

from f8a_jobs.api.auth import caller
from f8a_jobs.api.context import Response, engine, reply
from f8a_jobs.services.flows import outbox


def get_flows(
    job_id: str | None = None, flow_name: str | None = None, limit: int = 100, offset: int = 0
) -> Response:
    page, total = outbox.list_flows(engine(), job_id, flow_name, limit, offset, caller())
    return reply({"flows": page, "total": total})
