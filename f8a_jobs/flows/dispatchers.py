"""Pick the dispatcher the settings ask for."""

from __future__ import annotations

from f8a_jobs.flows.base import Dispatcher
from f8a_jobs.flows.embedded import EmbeddedDispatcher
from f8a_jobs.settings import Settings


def make_dispatcher(settings: Settings) -> Dispatcher:
    # F8A_JOBS_BROKER_URL selects the Celery dispatcher (its own issue); until then: embedded.
    return EmbeddedDispatcher()
