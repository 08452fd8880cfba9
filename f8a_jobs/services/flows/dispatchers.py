"""Pick the dispatcher the settings ask for."""

from __future__ import annotations

from f8a_jobs.core.settings import Settings
from f8a_jobs.services.flows.base import Dispatcher
from f8a_jobs.services.flows.embedded import EmbeddedDispatcher


def make_dispatcher(settings: Settings) -> Dispatcher:
    """Celery when ``F8A_JOBS_BROKER_URL`` is set, else the embedded dispatcher."""
    if settings.broker_url:
        from f8a_jobs.services.flows.celery import CeleryDispatcher  # Celery loads only when used

        return CeleryDispatcher(settings.broker_url, settings.broker_queue)
    return EmbeddedDispatcher()
