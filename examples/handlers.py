"""Handlers for the examples of the documents f8a-jobs was designed from (``examples/jobs``).

Run them with ``F8A_JOBS_HANDLER_MODULES=examples.handlers`` and
``F8A_JOBS_DEFAULT_JOBS_DIR=examples/jobs`` (see docs/workflows.md). ``Invite`` keeps its
marks as files in ``F8A_JOBS_EXAMPLES_DIR`` (default: a directory in the system's temp dir).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import datetime
from pathlib import Path

from f8a_jobs.handlers.base import BaseHandler


class Say(BaseHandler):
    """Datatailr's ``foo``/``bar``/``baz``: ``text`` with its ``{fields}`` filled from the
    kwargs (results of upstream tasks, through ``$result``) and ``{rundate}``."""

    def execute(self, text: str, scheduled_for: datetime | None = None, **values: object) -> str:
        rundate = (scheduled_for or datetime.now()).date().isoformat()
        return text.format(rundate=rundate, **values)


class Invite(BaseHandler):
    """DoJobber's ``SendInvite``: idempotent. ``check`` finds the invitation once it is sent,
    and returns it: a satisfied task's result is what its check found, so ``friends-arrive``
    gets the same list on every run; ``execute`` sends it (here: writes a file named after
    the address, holding the name)."""

    def check(self, email: str, name: str) -> str | bool:
        """The invitation found (``invited <name>``, as ``execute`` says), or False: not yet."""
        mark = _mark(email)
        if not mark.exists():
            return False
        return f"invited {mark.read_text().strip()}"

    def execute(self, email: str, name: str) -> str:
        mark = _mark(email)
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.write_text(f"{name}\n")
        return f"invited {name}"


def _mark(email: str) -> Path:
    default = Path(tempfile.gettempdir()) / "f8a-jobs-examples"
    folder = Path(os.environ.get("F8A_JOBS_EXAMPLES_DIR") or default)
    return folder / f"invited-{hashlib.blake2b(email.encode(), digest_size=8).hexdigest()}"
