"""Alerts about runs: raised in the transaction that ends a run (or records it missed, or
finds it late), kept in an outbox of their own (the ``alerts`` table), sent by the leader's
``execution/alerting.py``. A job's targets, or the service's default ones, say which."""

from f8a_jobs.services.alerts.outbox import (
    claim_due,
    delete_for,
    delete_of_job,
    delete_old,
    failed,
    lease,
    of_run,
    retry_later,
    sent,
)
from f8a_jobs.services.alerts.raising import Ended, raise_ended, raise_late

__all__ = [
    "Ended",
    "claim_due",
    "delete_for",
    "delete_of_job",
    "delete_old",
    "failed",
    "lease",
    "of_run",
    "raise_ended",
    "raise_late",
    "retry_later",
    "sent",
]
