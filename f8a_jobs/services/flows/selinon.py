"""The Selinon dispatcher: each outbox row becomes the message Selinon's own ``run_flow`` (or
``run_flow_selective``) sends, so an unmodified Selinon worker fleet runs the flow.

fabric8-analytics' workers are Selinon workers: a flow starts as a ``selinon.Dispatcher`` task
on the dispatcher queue the flow's YAML names, with ``flow_name``, ``node_args`` and, for a
selective run, the ``selective`` structure Selinon computes from ``task_names``,
``follow_subflows`` and ``run_subsequent``. The ``selinon`` package itself loads the fleet's
configuration folder and computes both; this module only sends what it computed, through the
outbox, with the flow's key as the task id (the Selinon dispatcher id) and as a header, as the
Celery dispatcher does.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from selinon import Config
from selinon.selective import compute_selective_run

from f8a_jobs.core.errors import ConfigurationError, InvalidInput
from f8a_jobs.services.flows.celery import CeleryDispatcher
from f8a_jobs.services.flows.outbox import flow_key, task_id

DISPATCHER_TASK = "selinon.Dispatcher"


@functools.lru_cache(maxsize=1)
def load_config(folder: Path) -> Any:
    """Selinon's ``Config``, set from ``folder`` laid out as fabric8-analytics-worker lays out
    its own: ``nodes.yml`` (or ``.yaml``) and ``flows/*.yml`` (or ``*.yaml``). Once per
    process: the dispatcher and the flow checks share it (Selinon's ``Config`` is global)."""

    nodes = [folder / name for name in ("nodes.yml", "nodes.yaml") if (folder / name).is_file()]
    flows = sorted([*folder.glob("flows/*.yml"), *folder.glob("flows/*.yaml")])
    if not nodes or not flows:
        raise ConfigurationError(
            f"F8A_JOBS_SELINON_CONFIG={folder}: expected nodes.yml and flows/*.yml in it"
        )
    try:
        Config.set_config_yaml(str(nodes[0]), [str(path) for path in flows])
    except Exception as error:  # Selinon's own errors name what is wrong
        raise ConfigurationError(
            f"F8A_JOBS_SELINON_CONFIG={folder}: Selinon cannot load it: "
            f"{type(error).__name__}: {error}"
        ) from None
    return Config


class SelinonDispatcher(CeleryDispatcher):
    def __init__(self, broker_url: str, config_folder: Path, connect_timeout: float = 5.0) -> None:
        self.config = load_config(config_folder)
        super().__init__(broker_url, "", connect_timeout)

    def _send(self, flow: dict[str, Any], producer: Any) -> None:
        key = flow_key(flow)
        name = flow["flow_name"]
        kwargs: dict[str, Any] = {"flow_name": name, "node_args": flow["arguments"]}
        if flow["task_names"] is not None:
            kwargs["selective"] = compute_selective_run(
                name, flow["task_names"], flow["follow_subflows"], flow["run_subsequent"]
            )
        self.app.send_task(
            DISPATCHER_TASK,
            kwargs=kwargs,
            task_id=task_id(key),
            queue=self.config.dispatcher_queues[name],
            headers=self._headers(flow, key),
            producer=producer,
            retry=False,
        )


class SelinonCatalogue:
    """The flows and tasks of the Selinon configuration: ``FlowCatalogue`` for the handlers."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def check(
        self,
        flow_name: str,
        task_names: list[str] | None,
        follow_subflows: bool,
        run_subsequent: bool,
    ) -> None:
        flows = sorted(self.config.dispatcher_queues)
        if flow_name not in self.config.dispatcher_queues:
            raise InvalidInput(
                "kwargs.flow_name",
                f"{flow_name!r} is no flow of the Selinon configuration (F8A_JOBS_SELINON_CONFIG); "
                f"its flows: {', '.join(flows)}",
            )
        if not task_names:
            return
        try:
            compute_selective_run(flow_name, task_names, follow_subflows, run_subsequent)
        except Exception as error:  # SelectiveNoPathError: a task not in the flow, say
            raise InvalidInput(
                "kwargs.task_names", f"flow {flow_name!r} cannot run {task_names!r}: {error}"
            ) from None
