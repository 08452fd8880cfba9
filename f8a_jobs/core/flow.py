"""A flow to dispatch: what a handler emits, the outbox keeps and a dispatcher delivers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from f8a_jobs.core.json_values import holds_nul

FLOW_NAME_LIMIT = 255  # flow_outbox.flow_name


@dataclass(slots=True)  # not frozen: a frozen init costs a call per field, per flow
class Flow:
    flow_name: str
    arguments: dict[str, Any]
    task_names: list[str] | None = None
    run_subsequent: bool = False
    follow_subflows: bool = False


def check_storable(flow: Flow) -> None:
    """Raise ``ValueError`` for a flow the database would refuse to store."""
    if len(flow.flow_name) > FLOW_NAME_LIMIT:
        raise ValueError(f"flow name longer than {FLOW_NAME_LIMIT} characters: {flow.flow_name!r}")
    if holds_nul([flow.flow_name, flow.arguments, flow.task_names]):
        raise ValueError(f"flow {flow.flow_name!r} holds a NUL character, which cannot be stored")
