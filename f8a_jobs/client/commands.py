"""``f8a-jobs jobs …`` and ``f8a-jobs runs …``: the client's calls from the shell (click).

Readable tables by default, ``--json`` for scripts; an error exits non-zero with the server's
message. ``F8A_JOBS_URL`` and ``F8A_JOBS_TOKEN`` (or ``--url``, ``--token``) say where and who.
"""

from __future__ import annotations

import io
import itertools
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from f8a_jobs.client.core import ApiError, Client, Json
from f8a_jobs.client.job_files import JobFileError, job_files, read_jobs, where

JOB_COLUMNS = ("job_id", "state", "handler", "next_run_time", "labels", "owner")
PLAN = ("created", "changed", "unchanged", "deleted")
PROGRESS_FROM = 200  # job files: fewer are read before anyone would look at a progress bar
RUN_COLUMNS = ("run_id", "job_id", "status", "trigger", "scheduled_for", "finished_at")


@click.group(name="f8a-jobs")
@click.option("--url", envvar="F8A_JOBS_URL", help="The service (F8A_JOBS_URL).")
@click.option("--token", envvar="F8A_JOBS_TOKEN", help="A bearer token (F8A_JOBS_TOKEN).")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts, not a table.")
@click.pass_context
def commands(context: click.Context, url: str | None, token: str | None, as_json: bool) -> None:
    """Jobs and runs of an f8a-jobs service."""
    context.obj = {"client": Client(url, token), "json": as_json}
    context.call_on_close(context.obj["client"].close)


@commands.group()
def jobs() -> None:
    """List, read and change jobs."""


@commands.group()
def runs() -> None:
    """List, follow and steer runs."""


def _client() -> Client:
    client: Client = click.get_current_context().obj["client"]
    return client


def _show(value: Any, columns: Sequence[str] | None = None) -> None:
    """``value`` as JSON (``--json``, or a single object), or a table of ``columns``."""
    if click.get_current_context().obj["json"] or columns is None:
        click.echo(json.dumps(value, indent=2, default=str))
        return
    rows = [[_cell(row.get(name)) for name in columns] for row in value]
    widths = [max([len(name)] + [len(row[n]) for row in rows]) for n, name in enumerate(columns)]
    for line in [list(columns), *rows]:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(item) for item in value) or "-"
    return str(value)


def _load(path: str) -> Json:
    """A job (or changes) from a YAML or JSON file."""
    import yaml  # only here: reading files is the CLI's, not the client's

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path}: expected one job (a mapping)")
    return data


@jobs.command("list")
@click.option("--label", multiple=True, help="Only jobs with this label (repeat: all of them).")
@click.option("--state", type=click.Choice(["running", "paused"]))
@click.option("--handler")
def jobs_list(label: tuple[str, ...], state: str | None, handler: str | None) -> None:
    filters: dict[str, Any] = {"label": list(label) or None, "state": state, "handler": handler}
    found = _client().jobs(**{key: value for key, value in filters.items() if value})
    _show(list(found), JOB_COLUMNS)


@jobs.command("get")
@click.argument("job_id")
def jobs_get(job_id: str) -> None:
    _show(_client().get_job(job_id))


@jobs.command("create")
@click.option("-f", "--file", "path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--reason")
def jobs_create(path: str, reason: str | None) -> None:
    _show(_client().create_job(_load(path), reason))


@jobs.command("edit")
@click.argument("job_id")
@click.option("-f", "--file", "path", required=True, type=click.Path(exists=True, dir_okay=False))
def jobs_edit(job_id: str, path: str) -> None:
    """Change the fields the file gives (the others stay)."""
    _show(_client().update_job(job_id, _load(path)))


@jobs.command("pause")
@click.argument("job_ids", nargs=-1, required=True)
@click.option("--reason")
def jobs_pause(job_ids: tuple[str, ...], reason: str | None) -> None:
    _show([_client().pause(job_id, reason) for job_id in job_ids], JOB_COLUMNS)


@jobs.command("resume")
@click.argument("job_ids", nargs=-1, required=True)
@click.option("--reason")
def jobs_resume(job_ids: tuple[str, ...], reason: str | None) -> None:
    _show([_client().resume(job_id, reason) for job_id in job_ids], JOB_COLUMNS)


@jobs.command("run")
@click.argument("job_ids", nargs=-1, required=True)
@click.option("--reason")
def jobs_run(job_ids: tuple[str, ...], reason: str | None) -> None:
    """Run each job once now."""
    _show([_client().run_now(job_id, reason) for job_id in job_ids], RUN_COLUMNS)


@jobs.command("delete")
@click.argument("job_ids", nargs=-1, required=True)
@click.option("--reason")
def jobs_delete(job_ids: tuple[str, ...], reason: str | None) -> None:
    for job_id in job_ids:
        _client().delete_job(job_id, reason)
        click.echo(f"deleted {job_id}", err=True)


@jobs.command("history")
@click.argument("job_id")
def jobs_history(job_id: str) -> None:
    _show(_client().history(job_id), ("at", "user", "action", "reason"))


@runs.command("list")
@click.option("--job", "job_id", help="Runs of jobs whose id starts so.")
@click.option("--status")
@click.option("--label", multiple=True)
@click.option("--limit", default=50, show_default=True, help="At most this many, newest first.")
def runs_list(job_id: str | None, status: str | None, label: tuple[str, ...], limit: int) -> None:
    filters: dict[str, Any] = {"job_id": job_id, "status": status, "label": list(label) or None}
    found = _client().search_runs(
        page_size=min(limit, 500), **{k: v for k, v in filters.items() if v}
    )
    _show(list(itertools.islice(found, limit)), RUN_COLUMNS)


@runs.command("get")
@click.argument("job_id")
@click.argument("run_id")
def runs_get(job_id: str, run_id: str) -> None:
    _show(_client().get_run(job_id, run_id))


@runs.command("wait")
@click.argument("job_id")
@click.argument("run_id")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds.")
def runs_wait(job_id: str, run_id: str, timeout: float) -> None:
    """Wait for the run to finish; exit 1 unless it succeeded."""
    run = _client().wait({"job_id": job_id, "run_id": run_id}, timeout)
    _show([run], RUN_COLUMNS)
    if run["status"] != "succeeded":
        raise SystemExit(1)


@runs.command("retry")
@click.argument("job_id")
@click.argument("run_id")
def runs_retry(job_id: str, run_id: str) -> None:
    _show([_client().retry(job_id, run_id)], RUN_COLUMNS)


@runs.command("cancel")
@click.argument("job_id")
@click.argument("run_id")
def runs_cancel(job_id: str, run_id: str) -> None:
    _show([_client().cancel(job_id, run_id)], RUN_COLUMNS)


@runs.command("logs")
@click.argument("job_id")
@click.argument("run_id")
@click.option("--follow", is_flag=True, help="Until the try ends, as it logs.")
def runs_logs(job_id: str, run_id: str, follow: bool) -> None:
    client = _client()
    records = client.follow_logs(job_id, run_id) if follow else client.logs(job_id, run_id)
    for record in records:
        if click.get_current_context().obj["json"]:
            click.echo(json.dumps(record))
        else:
            click.echo(_line(record))


@commands.command("apply")
@click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="A job file or a folder of them (.yaml, .yml, .json); repeat for more.",
)
@click.option("--prune", is_flag=True, help="Delete the jobs you may change that no file has.")
@click.option("-l", "--prune-label", help="With --prune: only jobs carrying this label.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--reason", help="Why (kept in each job's audit trail).")
def apply(
    paths: tuple[str, ...], prune: bool, prune_label: str | None, dry_run: bool, reason: str | None
) -> None:
    """Make the service's jobs match the files: the plan first, then one transaction."""
    if prune_label and not prune:
        raise click.BadParameter("--prune-label needs --prune")
    jobs, sources = _read(paths)
    client = _client()
    plan = _applied(client, jobs, sources, prune, prune_label, True, reason)
    _plan(plan, dry_run)
    if dry_run or not any(plan[key] for key in ("created", "changed", "deleted")):
        return
    done = _applied(client, jobs, sources, prune, prune_label, False, reason)
    if click.get_current_context().obj["json"]:
        click.echo(json.dumps(done, indent=2))
    else:
        click.echo("applied: " + ", ".join(f"{len(done[key])} {key}" for key in PLAN))


def _read(paths: Sequence[str]) -> tuple[list[Json], list[Path]]:
    """The jobs of the files, and the file of each; a progress bar when there are many."""
    files = job_files(paths)
    jobs: list[Json] = []
    sources: list[Path] = []
    shown = len(files) >= PROGRESS_FROM
    with click.progressbar(files, label="reading job files", file=_stderr(shown)) as bar:
        for path in bar:
            try:
                found = list(read_jobs(path))
            except JobFileError as error:
                raise click.ClickException(str(error)) from None
            jobs.extend(found)
            sources.extend([path] * len(found))
    if not jobs:
        raise click.ClickException(f"no jobs in {', '.join(paths)}")
    return jobs, sources


def _stderr(shown: bool) -> Any:
    return sys.stderr if shown else io.StringIO()


def _applied(
    client: Client,
    jobs: list[Json],
    sources: list[Path],
    prune: bool,
    prune_label: str | None,
    dry_run: bool,
    reason: str | None,
) -> Json:
    try:
        return client.apply(jobs, prune, prune_label, dry_run, reason)
    except ApiError as error:
        source = where(error.field, sources)
        if source is None:
            raise
        raise ApiError(error.status, f"{source}: {error.message}", error.field) from None


def _plan(plan: Json, dry_run: bool) -> None:
    """What apply does (or would do): one line per job that changes; a count of the rest."""
    if click.get_current_context().obj["json"]:
        click.echo(json.dumps(plan, indent=2))
        return
    marks = {"created": "+", "changed": "~", "deleted": "-"}
    for key, mark in marks.items():
        for job_id in plan[key]:
            click.echo(f"{mark} {job_id}  ({key[:-1]})")
    counts = ", ".join(f"{len(plan[key])} {key}" for key in PLAN)
    click.echo(f"plan: {counts}{' (dry run: nothing changed)' if dry_run else ''}")


def _line(record: Mapping[str, Any]) -> str:
    where = f"{record['task']} " if record.get("task") else ""
    return f"{record['ts']} {record['level']} [{where}try {record['try']}] {record['logger']}: {record['message']}"


def main(argv: list[str]) -> int:
    """Run one command; an API error is a message and exit status 1, not a traceback."""
    try:
        commands.main(args=argv, prog_name="f8a-jobs", standalone_mode=False)
    except ApiError as error:
        click.echo(f"f8a-jobs: {error}", err=True)
        return 1
    except TimeoutError as error:
        click.echo(f"f8a-jobs: {error}", err=True)
        return 1
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.Abort:
        return 1
    return 0
