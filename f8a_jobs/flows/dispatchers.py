"""Pick the dispatcher the settings ask for."""

from __future__ import annotations

from f8a_jobs.errors import ConfigurationError
from f8a_jobs.flows.base import Dispatcher
from f8a_jobs.flows.embedded import EmbeddedDispatcher
from f8a_jobs.settings import Settings


def make_dispatcher(settings: Settings) -> Dispatcher:
    if settings.broker_url:
        # Marking flows delivered while a broker is configured would lose them: refuse.
        raise ConfigurationError(
            "F8A_JOBS_BROKER_URL is set, but this version has only the embedded dispatcher; "
            "unset it, or upgrade to a version with the Celery dispatcher"
        )
    return EmbeddedDispatcher()
