"""Workflows: jobs made of tasks and of other jobs (a DAG).

``spec`` (what a user writes, validated), ``expand`` (jobs inside jobs inlined into one graph,
fixed when a run starts), ``engine`` with ``state``, ``parts`` and ``results`` (the pure core:
finished tries in, tries to start out), ``tries`` (a try as executors see it), ``queries``
(what the API shows, its retry and cancel), ``render`` (the graph as Mermaid or Graphviz),
``dry_run``. The task rows themselves are written by ``services.runs.tasks``.
"""
