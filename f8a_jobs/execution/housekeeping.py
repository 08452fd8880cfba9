"""A term's periodic chores: settle the runs of processes that are gone; retention."""

from __future__ import annotations

import logging
import time

from sqlalchemy import Engine

from f8a_jobs.core.clock import utcnow
from f8a_jobs.core.settings import Settings
from f8a_jobs.services import alerts, runs
from f8a_jobs.services.flows import outbox

log = logging.getLogger(__name__)
RETENTION_EVERY = 60.0  # seconds between retention batches


class Housekeeping:
    def __init__(self, engine: Engine, settings: Settings, epoch: int) -> None:
        self.engine = engine
        self.settings = settings
        self.epoch = epoch
        self.started = time.monotonic()
        self.last_orphans = 0.0
        self.last_retention = 0.0

    def run(self) -> None:
        now = time.monotonic()
        # A live process heartbeats within a lease of this term's start (even after the
        # database was down): before that, a stale heartbeat proves nothing.
        if now - self.started > self.settings.run_lease and (
            now - self.last_orphans >= self.settings.leader_poll_interval
        ):
            self.last_orphans = now
            with self.engine.begin() as connection:
                settled = runs.fail_orphans(
                    connection, self.epoch, self.settings.run_lease, utcnow()
                )
            if settled:
                log.warning("failed %d runs whose process is gone", settled)
        if now - self.last_retention > RETENTION_EVERY:
            self.last_retention = now
            self.retain()

    def retain(self) -> None:
        days, keep = self.settings.run_retention_days, self.settings.run_keep_last
        with self.engine.begin() as connection:
            old_runs = runs.delete_old_runs(connection, days, keep, utcnow())
            old_flows = outbox.delete_old_flows(connection, days, utcnow())
            old_alerts = alerts.delete_old(connection, days, utcnow())
        if old_runs or old_flows or old_alerts:
            log.info(
                "retention: deleted %d runs, %d flows and %d alerts older than %g days",
                old_runs,
                old_flows,
                old_alerts,
                days,
            )
