"""The package's shape, read from its source with ``ast``: no import circle between modules,
modules and functions that fit on a screen, and one writer for each table.

The layers themselves (which folder may import which) are import-linter contracts in
``pyproject.toml``, checked by ``make lint``; ARCHITECTURE.md draws them.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "f8a_jobs"
MIGRATIONS = PACKAGE / "storage" / "migrations"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
TABLES_MODULE = "f8a_jobs.storage.tables"
# Each table and the one place that writes it (a package, or a module).
OWNERS = {
    "jobs": "f8a_jobs.services.jobs",
    "job_runs": "f8a_jobs.services.runs",
    "run_tasks": "f8a_jobs.services.runs",
    "run_logs": "f8a_jobs.services.runs",
    "flow_outbox": "f8a_jobs.services.flows.outbox",
    "leadership": "f8a_jobs.storage.fencing",
    "service_state": "f8a_jobs.services.service_state",
    "audit_log": "f8a_jobs.services.audit",
    "job_labels": "f8a_jobs.services.jobs",
    "alerts": "f8a_jobs.services.alerts.outbox",
}
WRITES = {"insert", "update", "delete", "insert_rows", "update_rows"}
BULK = {"insert_rows", "update_rows"}  # (connection, table, rows, …)
GENERIC = "f8a_jobs.storage.bulk"  # the bulk helpers take any table: their callers name it
SQL_WRITE = re.compile(
    rf"\b(insert\s+into|update|delete\s+from)\s+\"?({'|'.join(OWNERS)})\b", re.IGNORECASE
)


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = modules()


def imported(name: str, path: Path) -> Iterator[str]:
    """The package's modules that ``name`` imports, anywhere in it (``TYPE_CHECKING`` too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets = [f"{base}.{alias.name}" for alias in node.names]
            targets = [target if target in MODULES else base for target in targets]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # `import a.b.c` names a.b.c's module
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def import_graph() -> dict[str, set[str]]:
    return {name: set(imported(name, path)) for name, path in MODULES.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            step = next(edges, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph[step]))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circle() -> None:
    found = circles(import_graph())
    assert not found, "import circles:\n" + "\n".join(" ↔ ".join(c) for c in found)


def test_the_circle_finder_finds_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert circles(graph) == [["a", "b", "c"]]


def sized_modules() -> Iterator[tuple[str, Path]]:
    for name, path in MODULES.items():
        if MIGRATIONS not in path.parents:
            yield name, path


def test_modules_fit_on_a_screen() -> None:
    lines = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in sized_modules()}
    long = {name: count for name, count in lines.items() if count > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_functions_fit_on_a_screen() -> None:
    long = {}
    for name, path in sized_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{name}.{node.name}"] = length
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def table_names(tree: ast.AST) -> dict[str, str]:
    """The local names this module gives the service's tables (``jobs as jobs_table``)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == TABLES_MODULE:
            for alias in node.names:
                if alias.name in OWNERS:
                    names[alias.asname or alias.name] = alias.name
    return names


def written_tables(path: Path) -> set[str]:
    """The tables a module issues INSERT, UPDATE or DELETE on (statements, bulk helpers,
    ``table.insert()``, or SQL text); ``?`` for a write whose table is not named (``delete(
    key.table)``), which would hide a writer from this check."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = table_names(tree)
    written = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            written |= {match[1].lower() for match in SQL_WRITE.findall(node.value)}
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.attr in WRITES and func.value.id in names:  # jobs.insert()
                written.add(names[func.value.id])
        elif isinstance(func, ast.Name) and func.id in WRITES:  # update(jobs), insert_rows(c, jobs)
            position = 1 if func.id in BULK else 0
            target = node.args[position] if len(node.args) > position else None
            named = isinstance(target, ast.Name) and target.id in names
            written.add(names[target.id] if named else "?")  # type: ignore[union-attr]
    return written


def writers() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {table: set() for table in [*OWNERS, "?"]}
    for name, path in MODULES.items():
        if MIGRATIONS in path.parents or name == GENERIC:
            continue  # migrations create and reshape the tables
        for table in written_tables(path):
            found[table].add(name)
    return found


def owned_by(module: str, owner: str) -> bool:
    return module == owner or module.startswith(f"{owner}.")


def test_every_write_names_its_table() -> None:
    assert not writers()["?"], f"writes whose table is not named: {sorted(writers()['?'])}"


@pytest.mark.parametrize("table", sorted(OWNERS))
def test_one_writer_per_table(table: str) -> None:
    modules_writing = writers()[table]
    assert modules_writing, f"no module writes {table}: the check reads no writes at all"
    strangers = sorted(m for m in modules_writing if not owned_by(m, OWNERS[table]))
    assert not strangers, f"{table} is written outside {OWNERS[table]}: {strangers}"


def test_the_write_finder_reads_every_form(tmp_path: Path) -> None:
    source = tmp_path / "example.py"
    source.write_text(
        "from f8a_jobs.storage.tables import jobs as j, job_runs, run_tasks, flow_outbox\n"
        "update(job_runs).values(x=1)\n"
        "insert_rows(connection, run_tasks, rows)\n"
        "j.delete()\n"
        "text('DELETE FROM leadership')\n"
        "select(flow_outbox)\n"
        "row.update(status=1)\n"
        "delete(key.table)\n",
        encoding="utf-8",
    )
    assert written_tables(source) == {"jobs", "job_runs", "run_tasks", "leadership", "?"}


@pytest.mark.parametrize("module", sorted(path.stem for path in (PACKAGE.parent / "bench").glob("*.py")))
def test_every_benchmark_module_imports(module: str) -> None:
    """``make bench`` runs for 20 minutes: a module that no longer imports must fail here."""
    importlib.import_module(f"bench.{module}")
