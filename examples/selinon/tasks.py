"""The example flow's two tasks: each records what it got, one JSON line per run, in the file
``F8A_SELINON_RECORD`` names (the tests read it), and logs it."""

from __future__ import annotations

import json
import logging
import os

from selinon import SelinonTask

log = logging.getLogger(__name__)


class _Recording(SelinonTask):  # type: ignore[misc]
    def run(self, node_args: dict) -> dict:
        line = {
            "task": self.task_name,
            "flow": self.flow_name,
            "dispatcher_id": self.dispatcher_id,
            "node_args": node_args,
        }
        log.info("%s got %s", self.task_name, node_args)
        path = os.environ.get("F8A_SELINON_RECORD")
        if path:
            with open(path, "a", encoding="utf-8") as record:
                record.write(json.dumps(line) + "\n")
        return line


class Metadata(_Recording):
    """Stands for the worker that reads a package's metadata."""


class Report(_Recording):
    """Stands for the worker that writes the analysis."""
