"""The flagship handlers: schedule one flow per argument set a job lists.

An argument set may be ``{"$filter": QUERY, ...extra}``: at run time it expands into one
argument set per matching row, streamed from the database into the outbox in batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from f8a_jobs import filters
from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.flow import Flow
from f8a_jobs.handlers.base import BaseHandler


class FlowCatalogue(Protocol):
    """The flows the workers know (``services.flows.selinon``): a job naming another flow, or
    a task its flow cannot reach, is refused when it is created, not failed when it runs."""

    def check(
        self,
        flow_name: str,
        task_names: list[str] | None,
        follow_subflows: bool,
        run_subsequent: bool,
    ) -> None:
        """Raise ``InvalidInput`` naming ``kwargs.flow_name`` or ``kwargs.task_names``."""


_catalogue: FlowCatalogue | None = None


def use_catalogue(catalogue: FlowCatalogue | None) -> None:
    """Check flow names against ``catalogue`` from now on (None: accept any name)."""
    global _catalogue
    _catalogue = catalogue


class FlowScheduling(BaseHandler):
    """Schedule flow ``flow_name`` once for every object in ``flow_arguments``.

    Each argument set gets ``job_id`` added, so workers can tell which job asked for them.
    Returns how many flows the run emitted (its result).
    """

    def execute(self, flow_name: str, flow_arguments: list[dict[str, Any]]) -> int:
        return self.emitted(flow_name, flow_arguments, self.flows(flow_name, flow_arguments))

    def emitted(
        self, flow_name: str, flow_arguments: list[dict[str, Any]], flows: Iterator[Flow]
    ) -> int:
        """Emit ``flows``. A run that read a ``$filter`` says in its log how many rows made
        flows; a plain run does not (its result says as much, and a line costs each of the
        thousands of runs a burst of jobs makes)."""
        count = self.emit_flows(flows)
        if any(filters.is_filter(argument_set) for argument_set in flow_arguments):
            self.log.info("%d %s flows emitted for the rows of its $filter", count, flow_name)
        return count

    def flows(
        self, flow_name: str, flow_arguments: list[dict[str, Any]], **options: Any
    ) -> Iterator[Flow]:
        for index, argument_set in enumerate(flow_arguments):
            # job_id joins the extra keys, so each matching row is copied once, not twice
            with_job = {**argument_set, "job_id": self.job_id}
            for arguments in filters.expand(with_job, f"kwargs.flow_arguments[{index}]"):
                yield Flow(flow_name, arguments, **options)

    @classmethod
    def validate(cls, kwargs: dict[str, Any]) -> None:
        super().validate(kwargs)
        if not kwargs["flow_name"].strip():
            raise InvalidInput("kwargs.flow_name", "must not be empty")
        for index, argument_set in enumerate(kwargs["flow_arguments"]):
            filters.validate(argument_set, f"kwargs.flow_arguments[{index}]")
        if _catalogue is not None:
            _catalogue.check(
                kwargs["flow_name"],
                kwargs.get("task_names"),
                bool(kwargs.get("follow_subflows")),
                bool(kwargs.get("run_subsequent")),
            )


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
        flows = self.flows(
            flow_name,
            flow_arguments,
            task_names=task_names,
            run_subsequent=run_subsequent,
            follow_subflows=follow_subflows,
        )
        return self.emitted(flow_name, flow_arguments, flows)

    @classmethod
    def validate(cls, kwargs: dict[str, Any]) -> None:
        super().validate(kwargs)
        if not kwargs["task_names"]:
            raise InvalidInput("kwargs.task_names", "name at least one task")
