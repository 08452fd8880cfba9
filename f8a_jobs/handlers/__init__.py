"""Job handlers: ``BaseHandler`` and the registry of named handlers."""

from f8a_jobs.handlers.base import BaseHandler

__all__ = ["BaseHandler"]
