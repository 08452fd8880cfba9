"""Pick the dispatcher the settings ask for."""

from __future__ import annotations

from f8a_jobs.core.settings import Settings
from f8a_jobs.handlers.flow_scheduling import use_catalogue
from f8a_jobs.services.flows.base import Dispatcher
from f8a_jobs.services.flows.embedded import EmbeddedDispatcher


def make_dispatcher(settings: Settings) -> Dispatcher:
    """``F8A_JOBS_FLOW_DISPATCHER``; unset, Celery when ``F8A_JOBS_BROKER_URL`` is set, else
    the embedded dispatcher."""
    chosen = settings.flow_dispatcher or ("celery" if settings.broker_url else "embedded")
    if chosen == "selinon" and settings.broker_url and settings.selinon_config:
        from f8a_jobs.services.flows.selinon import SelinonDispatcher  # Selinon loads if used

        return SelinonDispatcher(settings.broker_url, settings.selinon_config)
    if chosen == "celery" and settings.broker_url:
        from f8a_jobs.services.flows.celery import CeleryDispatcher  # Celery loads only when used

        return CeleryDispatcher(settings.broker_url, settings.broker_queue)
    return EmbeddedDispatcher()


def check_flows_against(settings: Settings) -> None:
    """With the Selinon dispatcher, a job's flow and tasks are checked against the workers'
    configuration when the job is created (API or default job files); else any name goes."""
    if settings.flow_dispatcher == "selinon" and settings.selinon_config:
        from f8a_jobs.services.flows.selinon import SelinonCatalogue, load_config

        use_catalogue(SelinonCatalogue(load_config(settings.selinon_config)))
    else:
        use_catalogue(None)
