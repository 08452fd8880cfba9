"""vdk-meta-jobs' ``MetaJobInput().run_meta_job(JOBS_RUN_ORDER)`` on f8a-jobs: the list of
jobs (``job_name``, ``depends_on``, ``arguments``, ``fail_meta_job_on_error``, ``team_name``)
runs as a workflow of those jobs, which the service takes as vdk writes it.

The workflow is stored as a job of its own that runs only when started (``meta_job_id``, by default named after the
list's content, so the same list reuses one job), started, and waited for; a run that failed
raises ``MetaJobFailed`` (a job whose ``fail_meta_job_on_error`` is false does not fail it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from f8a_jobs.client.core import Client, Json

__all__ = ["MetaJobFailed", "MetaJobInput"]


class MetaJobFailed(Exception):
    """The meta job's run failed; ``run`` is the run with each task's state and error."""

    def __init__(self, run: Json) -> None:
        super().__init__(
            f"meta job {run['job_id']!r} run {run['run_id']} failed: {run.get('error')}"
        )
        self.run = run


class MetaJobInput:
    """``client``: the service (default ``Client()``: ``F8A_JOBS_URL``, ``F8A_JOBS_TOKEN``)."""

    def __init__(self, client: Client | None = None, max_concurrent: int | None = None) -> None:
        self.client = client or Client()
        self.max_concurrent = max_concurrent

    def run_meta_job(
        self,
        jobs: Sequence[Mapping[str, Any]],
        meta_job_id: str | None = None,
        timeout: float = 24 * 3600.0,
    ) -> Json:
        """Run ``jobs`` in their ``depends_on`` order and wait; the run that ended."""
        job_id = meta_job_id or _meta_job_id(jobs)
        job: Json = {"job_id": job_id, "tasks": [dict(item) for item in jobs], "manual": True}
        if self.max_concurrent is not None:
            job["max_concurrent"] = self.max_concurrent
        self.client.save_job(job)
        run = self.client.wait(self.client.run_now(job_id), timeout=timeout)
        if run["status"] != "succeeded":
            raise MetaJobFailed(run)
        return run


def _meta_job_id(jobs: Sequence[Mapping[str, Any]]) -> str:
    digest = hashlib.sha256(json.dumps(list(jobs), sort_keys=True).encode()).hexdigest()
    return f"meta-job-{digest[:12]}"
