"""A stock Selinon worker on this folder's configuration: ``celery -A examples.selinon.worker
worker -Q f8a_example_dispatcher,f8a_example_tasks`` (broker and result backend from
``F8A_SELINON_BROKER_URL`` and ``F8A_SELINON_RESULT_BACKEND``)."""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery
from selinon import Config

HERE = Path(__file__).resolve().parent
broker = os.environ.get("F8A_SELINON_BROKER_URL", "redis://127.0.0.1:6379/0")
app = Celery("selinon-example", broker=broker, backend=os.environ.get("F8A_SELINON_RESULT_BACKEND", "redis://127.0.0.1:6379/1"))
Config.set_celery_app(app)
Config.set_config_yaml(str(HERE / "nodes.yml"), sorted(str(path) for path in (HERE / "flows").glob("*.yml")))
