"""Default jobs: YAML files loaded at every start; loading twice creates no duplicate.

A file names its job (``job_id``), so its job is created the first time, updated when the file
changes, and left alone otherwise. The file's ``state`` applies only when it creates the job: a
pause made through the API survives a changed file. A file never overwrites a job that came
from elsewhere (the API, or another file). A bad file is reported with its name and skipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, select

from f8a_jobs.core.access import Actor, Caller
from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.json_values import MAX_DEPTH, depth_exceeds
from f8a_jobs.core.settings import get_settings
from f8a_jobs.services import audit
from f8a_jobs.services.jobs import store
from f8a_jobs.services.jobs.service import replace_job
from f8a_jobs.services.jobs.spec import JobSpec, parse_job
from f8a_jobs.storage import wakeups
from f8a_jobs.storage.locks import exclusive
from f8a_jobs.storage.tables import jobs

REQUIRED = ("job_id", "handler", "kwargs")
log = logging.getLogger(__name__)


@dataclass
class LoadReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"default jobs: {len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged, {len(self.errors)} bad files"
        )


def job_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def read_job_file(path: Path) -> tuple[dict[str, Any], str]:
    """The job a file defines, and a digest of it to tell whether the file changed."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput("yaml", f"not valid YAML: {exc}") from None
    except RecursionError:
        data = [[]] * (MAX_DEPTH + 1)
    if depth_exceeds(data):
        raise InvalidInput("yaml", f"nested more than {MAX_DEPTH} levels deep")
    if not isinstance(data, dict):
        raise InvalidInput("yaml", "the file must hold one mapping of job options")
    for key in ("job_id",) if "tasks" in data else REQUIRED:
        if key not in data:
            raise InvalidInput(key, "required in a default job file")
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return data, digest


def load_default_jobs(engine: Engine, directory: Path) -> LoadReport:
    report = LoadReport()
    if not directory.is_dir():
        report.errors.append(f"{directory}: no such directory")
        return report
    with exclusive(engine, "default-jobs"):
        pending = job_files(directory)
        while pending:  # a workflow may name a job whose file comes later: try it again then
            refused = []
            for path in pending:
                try:
                    _load_file(engine, path, report)
                except InvalidInput as exc:
                    refused.append((path, exc))
            if len(refused) == len(pending):
                report.errors.extend(f"{path.name}: {exc.detail}" for path, exc in refused)
                break
            pending = [path for path, _ in refused]
    for error in report.errors:
        log.error("default job skipped: %s", error)
    log.info(report.summary())
    return report


def _owned(job: JobSpec, data: dict[str, Any], known: Any) -> JobSpec:
    """The file's owner, group and permissions where it names them; else those the job has
    (an admin may have changed them through the API), or the system owner's for a new job."""
    if known is None:
        return dataclasses.replace(job, owner=job.owner or get_settings().system_owner)
    return dataclasses.replace(
        job,
        owner=job.owner or known.owner,
        group=job.group if "group" in data else known.group_name,
        permissions=job.permissions if "permissions" in data else known.permissions,
    )


def _load_file(engine: Engine, path: Path, report: LoadReport) -> None:
    data, digest = read_job_file(path)
    with engine.connect() as connection:
        columns = (jobs.c.source, jobs.c.source_hash, jobs.c.owner, jobs.c.group_name)
        known = connection.execute(
            select(*columns, jobs.c.permissions).where(jobs.c.job_id == data["job_id"])
        ).first()
    if known is not None and known.source != path.name:
        origin = "through the API" if known.source == "api" else f"by {known.source}"
        raise InvalidInput(
            "job_id",
            f"job {data['job_id']!r} was created {origin}; {path.name} does not overwrite it",
        )
    if known is not None and known.source_hash == digest:
        report.unchanged.append(data["job_id"])
        return
    job = _owned(parse_job(data, source=path.name), data, known)
    job = dataclasses.replace(job, source_hash=digest)
    actor = Actor(Caller(get_settings().system_owner, admin=True), f"default job file {path.name}")
    with wakeups.changing(engine, wakeups.JOBS) as connection:
        if known is None:
            store.add(connection, job, utcnow())
            audit.record(connection, actor, "create", job.job_id, {"source": path.name})
            report.created.append(job.job_id)
        else:
            replace_job(connection, job)
            audit.record(connection, actor, "edit", job.job_id, {"source": path.name})
            report.updated.append(job.job_id)
