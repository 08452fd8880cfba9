"""Workflows: jobs made of tasks and of other jobs (a DAG).

``spec`` (what a user writes, validated), ``expand`` (jobs inside jobs inlined into one graph,
fixed when a run starts), ``engine`` (the pure core: finished tasks in, tasks to start out),
``store`` (the one writer of task rows), ``runner`` (the leader's loop that drives workflow
runs), ``execute`` (one try of one task: check, execute, recheck), ``render`` (the graph as
Mermaid or Graphviz), ``dry_run``.
"""

from __future__ import annotations

PENDING, READY, RUNNING, RETRYING = "pending", "ready", "running", "retrying"
SUCCEEDED, SATISFIED, FAILED = "succeeded", "satisfied", "failed"
UPSTREAM_FAILED, CANCELLED = "upstream_failed", "cancelled"
DONE = frozenset({SUCCEEDED, SATISFIED})
FINAL = frozenset({SUCCEEDED, SATISFIED, FAILED, UPSTREAM_FAILED, CANCELLED})
STATES = (PENDING, READY, RUNNING, RETRYING, *sorted(FINAL))
WHOLE = -1  # the ``part`` of a task's own row; its for_each parts are 0…n-1
RESULT_KEY = "$result"
