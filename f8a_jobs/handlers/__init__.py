"""Layer 4, the handler API: ``BaseHandler`` (``base``), what a run offers it (``Context``),
checking kwargs against ``execute`` (``kwargs``), handlers by name (``registry``) and the
built-in handlers. A plugin imports ``BaseHandler`` (and ``Flow``, to emit flows) from here."""

from f8a_jobs.core.flow import Flow
from f8a_jobs.handlers.base import BaseHandler, Context

__all__ = ["BaseHandler", "Context", "Flow"]
