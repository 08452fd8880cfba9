"""Jobs: a job's definition parsed once into a ``JobSpec`` (``spec``), the one writer of job
rows (``store``), references between jobs (``references``), the service the API calls
(``service``, ``editing``), secret kwargs in what it shows and keeps (``secret_kwargs``) and
the default job files (``defaults``)."""

from f8a_jobs.services.jobs.editing import patch_job
from f8a_jobs.services.jobs.service import (
    create_job,
    delete_job,
    get_job,
    get_schedule,
    job_json,
    list_jobs,
    replace_job,
    set_job_state,
    stored_workflow,
    unreachable_job_ids,
)
from f8a_jobs.services.jobs.spec import WORKFLOW_KEYS, HandlerCall, JobSpec, parse_job

__all__ = [
    "WORKFLOW_KEYS",
    "HandlerCall",
    "JobSpec",
    "create_job",
    "delete_job",
    "get_job",
    "get_schedule",
    "job_json",
    "list_jobs",
    "parse_job",
    "patch_job",
    "replace_job",
    "set_job_state",
    "stored_workflow",
    "unreachable_job_ids",
]
