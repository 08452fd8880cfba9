"""Sends the alerts runs raised, on the leader, and finds late runs and slots.

An alert's report is made from the rows at its first try and kept with it, so each retry sends
the same content under the same delivery id. A target that is down delays its alerts (retried
with a doubling backoff until ``F8A_JOBS_ALERT_RETRY_FOR`` has passed, then recorded failed);
it never blocks a run, whose end raised the alert in its own transaction long before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from f8a_jobs.core.alert_report import parse_smtp_url
from f8a_jobs.core.clock import iso, utcnow
from f8a_jobs.core.settings import Settings
from f8a_jobs.core.states import WHOLE, RunStatus, TaskState
from f8a_jobs.execution.delivery import DeliveryError, DeliveryRefused, post_webhook, send_mail
from f8a_jobs.execution.loop import Every, Loop
from f8a_jobs.services import alerts, service_state
from f8a_jobs.services.runs.log_view import record_json, record_line
from f8a_jobs.services.runs.tasks import task_rows
from f8a_jobs.services.workflows.queries import tasks_json
from f8a_jobs.storage.fencing import fence
from f8a_jobs.storage.tables import job_runs, run_logs

log = logging.getLogger(__name__)
LOG_LINES = 20  # the last lines of each failed try a report shows
TRIES_SHOWN = 10
MAX_BACKOFF = 600.0
LEASE = 120.0  # seconds: an alert leased and not recorded by then is sent again
SENT, REFUSED, RETRY = "sent", "refused", "retry"
SUMMARIES = {
    "failure": "the run failed",
    "timeout": "the run ran out of time",
    "success": "the run succeeded",
    "recovery": "the run succeeded after failed runs",
    "late": "the run had not started by its late_after",
    "missed": "the run was recorded missed",
}


class Alerter(Loop):
    what = "alert delivery"
    on_lost_log = "sending no more alerts"

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        epoch: int,
        on_lost: Callable[[], None] = lambda: None,
        batch: int = 50,
        idle_wait: float = 1.0,
    ) -> None:
        super().__init__("f8a-jobs-alerts", on_lost)
        self.engine = engine
        self.settings = settings
        self.epoch = epoch
        self.batch = batch
        self.idle_wait = idle_wait
        self.late_check = Every(max(idle_wait, 5.0), due_at_once=True)
        self.smtp = parse_smtp_url(settings.smtp_url) if settings.smtp_url else None
        self._more = False

    def wait_time(self) -> float:
        return 0.0 if self._more else min(self.idle_wait, self.late_check.remaining())

    def step(self) -> None:
        if self.late_check.due():
            with self.engine.begin() as connection:
                fence(connection, self.epoch)
                if service_state.read_state(connection) != "paused":  # nothing fires: not late
                    alerts.raise_late(connection, utcnow())
        self._more = self.send_due() >= self.batch

    def failed(self, error: Exception) -> float:
        log.warning("sending alerts failed (%s); retrying", error)
        return self.idle_wait

    def send_due(self) -> int:
        """Send up to one batch of due alerts, one after another. Each is leased in a short
        transaction (its report made then, and kept), sent outside any transaction, and its
        outcome recorded in another: a slow target holds no lock, and a sender that dies
        between sending and recording sends it again after the lease, under its delivery id."""
        sent = 0
        while sent < self.batch:
            alert = self._lease()
            if alert is None:
                break
            self._record(alert, self._deliver(alert))
            sent += 1
        return sent

    def _lease(self) -> dict[str, Any] | None:
        with self.engine.begin() as connection:
            fence(connection, self.epoch)
            due = alerts.claim_due(connection, utcnow(), 1)
            if not due:
                return None
            alert = due[0]
            if alert["report"] is None:
                alert["report"] = make_report(connection, alert, self.settings.public_url)
            alerts.lease(
                connection, alert["id"], alert["report"], utcnow() + timedelta(seconds=LEASE)
            )
            return alert

    def _deliver(self, alert: dict[str, Any]) -> tuple[str, str | None]:
        """How sending went: sent, refused (for good) or retry, with the error."""
        target, report = alert["target"], alert["report"]
        try:
            if "webhook" in target:
                slack = target.get("format") == "slack"
                post_webhook(target["webhook"], report, self.settings.webhook_secret, slack)
            elif self.smtp is None:
                return REFUSED, "an email alert, and F8A_JOBS_SMTP_URL is not set"
            else:
                send_mail(self.smtp, target["email"], report)
        except DeliveryRefused as error:
            return REFUSED, str(error)
        except DeliveryError as error:
            return RETRY, str(error)
        except Exception as error:  # one alert's surprise must not stop every other alert
            log.exception("alert %s: sending failed unexpectedly", alert["delivery"])
            return RETRY, f"{type(error).__name__} while sending"
        return SENT, None

    def _record(self, alert: dict[str, Any], outcome: tuple[str, str | None]) -> None:
        kind, error = outcome
        with self.engine.begin() as connection:
            fence(connection, self.epoch)
            if kind == SENT:
                alerts.sent(connection, alert["id"], utcnow())
            elif kind == REFUSED:
                log.error("alert %s refused for good: %s", alert["delivery"], error)
                alerts.failed(connection, alert["id"], error or "")
            else:
                backoff = min(self.settings.alert_backoff * 2 ** alert["tries"], MAX_BACKOFF)
                later = utcnow() + timedelta(seconds=backoff)
                log.warning(
                    "alert %s (%s) not delivered: %s", alert["delivery"], alert["event"], error
                )
                alerts.retry_later(connection, alert, error or "", later)


def make_report(
    connection: Connection, alert: Mapping[str, Any], public_url: str | None
) -> dict[str, Any]:
    """What an alert says, from the rows as they are now (the run has ended, or is late)."""
    run = _run(connection, alert["run_id"])
    report: dict[str, Any] = {
        "delivery": alert["delivery"],
        "event": alert["event"],
        "summary": SUMMARIES[alert["event"]],
        "job_id": alert["job_id"],
        "run_id": alert["run_id"],
        "url": _link(public_url, alert["job_id"], alert["run_id"]),
        "tasks": [],
        "failed_tries": [],
    }
    if run is None:
        slot = iso(alert["slot"])
        return {
            **report,
            "scheduled_for": slot,
            "status": None,
            "error": None,
            "duration_seconds": None,
        }
    started, finished = run["started_at"], run["finished_at"]
    report.update(
        status=run["status"],
        started_by=run["started_by"],
        trigger=run["trigger"],
        scheduled_for=iso(run["scheduled_for"]),
        started_at=iso(started),
        finished_at=iso(finished),
        duration_seconds=(finished - started).total_seconds() if started and finished else None,
        error=run["error"],
        tries=run["tries"],
    )
    if alert["event"] == "failure" and (run["tries"] or 0) > 1:
        report["summary"] += f" after {run['tries']} tries"
    if run["graph"]:
        report["tasks"] = _tasks(connection, run)
    report["failed_tries"] = _failed_tries(connection, run)
    return report


def _run(connection: Connection, run_id: str | None) -> dict[str, Any] | None:
    if run_id is None:
        return None
    row = connection.execute(select(job_runs).where(job_runs.c.run_id == run_id)).mappings().first()
    return dict(row) if row else None


def _link(public_url: str | None, job_id: str, run_id: str | None) -> str | None:
    if not public_url:
        return None
    path = f"/api/v1/jobs/{job_id}" + (f"/runs/{run_id}" if run_id else "")
    return public_url + path


def _tasks(connection: Connection, run: Mapping[str, Any]) -> list[dict[str, Any]]:
    entries = tasks_json(run["graph"], task_rows(connection, run["run_id"]))
    return [
        {
            "task": entry["name"],
            "state": entry["state"],
            "tries": entry["tries"],
            "error": entry.get("error"),
        }
        for entry in entries
    ]


def _failed_tries(connection: Connection, run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The last lines of each try that failed: a plain run's, or its tasks' (parts too)."""
    if run["graph"]:
        units = [
            (row["task"], row["part"], row["tries"], row["state"] == TaskState.FAILED)
            for row in task_rows(connection, run["run_id"])
        ]
    else:
        units = [("", WHOLE, run["tries"] or 0, run["status"] == RunStatus.FAILED)]
    failed = [
        (task, part, number)
        for task, part, tries, ended_failed in units
        for number in range(1, tries + (1 if ended_failed else 0))
    ]
    return [_try_lines(connection, run["run_id"], *key) for key in failed[-TRIES_SHOWN:]]


def _try_lines(
    connection: Connection, run_id: str, task: str, part: int, number: int
) -> dict[str, Any]:
    query = (
        select(run_logs)
        .where(
            run_logs.c.run_id == run_id,
            run_logs.c.task == task,
            run_logs.c.part == part,
            run_logs.c.try_number == number,
            run_logs.c.attempt.is_(None),
        )
        .order_by(run_logs.c.id.desc())
        .limit(LOG_LINES)
    )
    records = reversed(list(connection.execute(query).mappings()))
    lines = [record_line(record_json(dict(record))).rstrip("\n") for record in records]
    shown: dict[str, Any] = {"task": task or None, "try": number, "lines": lines}
    if part != WHOLE:
        shown["part"] = part
    return shown
