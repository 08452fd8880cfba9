"""Runs: ``lifecycle`` (the one writer of run states), ``firing`` (due runs as rows),
``context`` (what a handler's run holds), ``writer`` (grouped commits of finished runs),
``retention`` and ``queries`` (what the API shows)."""

from __future__ import annotations

import os
import time

QUEUED, RUNNING, SUCCEEDED, FAILED, MISSED = "queued", "running", "succeeded", "failed", "missed"
CANCELLED = "cancelled"  # a workflow run, or a queued run, that the API cancelled
FINISHED = (SUCCEEDED, FAILED, MISSED, CANCELLED)
SCHEDULE, MANUAL, BACKFILL, AFTER = "schedule", "manual", "backfill", "after"  # what queued a run


def new_run_id() -> str:
    """32 hex digits: time first, so ids of a job's runs sort roughly by start."""
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"
