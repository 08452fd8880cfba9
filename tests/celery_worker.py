"""A real Celery worker for the tests: every flow it receives is appended to a file.

Run: celery -A tests.celery_worker worker (F8A_TEST_BROKER_URL, F8A_TEST_QUEUE,
F8A_TEST_RECEIVED in the environment).
"""

import json
import os
from pathlib import Path

from celery import Celery

app = Celery("f8a_jobs_test_worker", broker=os.environ["F8A_TEST_BROKER_URL"])
app.conf.task_default_queue = os.environ["F8A_TEST_QUEUE"]
HEADERS = ("f8a_jobs_flow_key", "f8a_jobs_outbox_id", "f8a_jobs_job_id", "f8a_jobs_task_names", "f8a_jobs_run_subsequent", "f8a_jobs_follow_subflows")


def record(task, kwargs):
    line = {"name": task.name, "id": task.request.id, "kwargs": kwargs,
            "headers": {key: getattr(task.request, key, None) for key in HEADERS}}
    with Path(os.environ["F8A_TEST_RECEIVED"]).open("a") as received:
        received.write(json.dumps(line) + "\n")


@app.task(bind=True, name="bayesianFlow")
def bayesian_flow(self, **kwargs):
    record(self, kwargs)


@app.task(bind=True, name="otherFlow")
def other_flow(self, **kwargs):
    record(self, kwargs)
