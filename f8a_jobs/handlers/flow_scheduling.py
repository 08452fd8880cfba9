"""The flagship handlers: schedule one flow per argument set a job lists."""

from __future__ import annotations

from typing import Any

from f8a_jobs.errors import InvalidInput
from f8a_jobs.flows import outbox
from f8a_jobs.handlers.base import BaseHandler


class FlowScheduling(BaseHandler):
    """Schedule flow ``flow_name`` once for every object in ``flow_arguments``.

    Each argument set gets ``job_id`` added, so workers can tell which job asked for them.
    """

    def execute(self, flow_name: str, flow_arguments: list[dict[str, Any]]) -> int:
        return outbox.schedule_flows(
            self.engine, self.job_id, self.flows(flow_name, flow_arguments)
        )

    def flows(self, flow_name: str, flow_arguments: list[dict[str, Any]]) -> list[outbox.Flow]:
        return [
            outbox.Flow(flow_name, {**arguments, "job_id": self.job_id})
            for arguments in flow_arguments
        ]

    @classmethod
    def validate(cls, kwargs: dict[str, Any]) -> None:
        super().validate(kwargs)
        if not kwargs["flow_name"].strip():
            raise InvalidInput("kwargs.flow_name", "must not be empty")


class SelectiveFlowScheduling(FlowScheduling):
    """Like ``FlowScheduling``, but runs only ``task_names`` of each flow.

    ``run_subsequent`` also runs the tasks that follow them; ``follow_subflows`` descends into
    sub-flows.
    """

    def execute(  # type: ignore[override]
        self,
        flow_name: str,
        task_names: list[str],
        flow_arguments: list[dict[str, Any]],
        run_subsequent: bool = False,
        follow_subflows: bool = False,
    ) -> int:
        flows = [
            outbox.Flow(
                flow.flow_name,
                flow.arguments,
                task_names=task_names,
                run_subsequent=run_subsequent,
                follow_subflows=follow_subflows,
            )
            for flow in self.flows(flow_name, flow_arguments)
        ]
        return outbox.schedule_flows(self.engine, self.job_id, flows)

    @classmethod
    def validate(cls, kwargs: dict[str, Any]) -> None:
        super().validate(kwargs)
        if not kwargs["task_names"]:
            raise InvalidInput("kwargs.task_names", "name at least one task")
