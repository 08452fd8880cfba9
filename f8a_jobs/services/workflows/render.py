"""A workflow's graph as JSON, Mermaid, Mermaid fenced for Markdown (GitHub, GitLab and most
Markdown viewers draw a ```` ```mermaid ```` block) or Graphviz dot, with each task's state in
the run shown."""

from __future__ import annotations

import json
import re
from typing import Any

from f8a_jobs.core.errors import InvalidInput

FORMATS = ("json", "mermaid", "markdown", "dot")
MERMAID_STYLE = {
    "succeeded": "fill:#c8e6c9",
    "satisfied": "fill:#dcedc8",
    "failed": "fill:#ffcdd2",
    "upstream_failed": "fill:#ffe0b2",
    "running": "fill:#bbdefb",
    "retrying": "fill:#fff9c4",
    "cancelled": "fill:#e0e0e0",
}


def render(tasks: list[dict[str, Any]], form: str) -> str | dict[str, Any]:
    """``tasks``: name, depends_on and (optionally) state of each task, in graph order."""
    if form not in FORMATS:
        raise InvalidInput("format", f"{form!r} is not one of {', '.join(FORMATS)}")
    if form == "json":
        return {"tasks": tasks}
    if form == "markdown":
        return f"```mermaid\n{_mermaid(tasks)}```\n"
    return _mermaid(tasks) if form == "mermaid" else _dot(tasks)


def _label(task: dict[str, Any]) -> str:
    state = task.get("state")
    return f"{task['name']} ({state})" if state else task["name"]


def _mermaid(tasks: list[dict[str, Any]]) -> str:
    ids = {task["name"]: f"t{index}" for index, task in enumerate(tasks)}
    lines = ["flowchart TD"]
    for task in tasks:
        text = re.sub(r'["\n]', "'", _label(task))
        lines.append(f'    {ids[task["name"]]}["{text}"]')
    for task in tasks:
        for dependency in task.get("depends_on", []):
            lines.append(f"    {ids[dependency]} --> {ids[task['name']]}")
    for task in tasks:
        style = MERMAID_STYLE.get(task.get("state") or "")
        if style:
            lines.append(f"    style {ids[task['name']]} {style}")
    return "\n".join(lines) + "\n"


def _dot(tasks: list[dict[str, Any]]) -> str:
    lines = ["digraph workflow {", "  rankdir=TB;"]
    for task in tasks:
        lines.append(f"  {json.dumps(task['name'])} [label={json.dumps(_label(task))}];")
    for task in tasks:
        for dependency in task.get("depends_on", []):
            lines.append(f"  {json.dumps(dependency)} -> {json.dumps(task['name'])};")
    return "\n".join([*lines, "}"]) + "\n"
