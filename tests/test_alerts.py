"""Alerts, end to end: a real server mails through an SMTP server in this process (aiosmtpd)
and posts to a real HTTP receiver that checks each signature and can answer 500 first.

A failure alerts once per run, after its last try; ``after_failures``, ``recovery``,
``repeat_every``; an SMTP server that is down and a receiver that answers 500 delay an alert
(sent once, under one delivery id), never lose it; a bad target is a 400 naming it.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import re
import signal
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from f8a_jobs.core.clock import utcnow
from f8a_jobs.storage.db import build_engine
from f8a_jobs.storage.tables import alerts
from tests.conftest import free_port, module_server, poll, wipe

SECRET = "webhook-secret"


class Inbox:
    """aiosmtpd's handler: every message it accepts, parsed."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK"


class Receiver:
    """A webhook receiver: records each post, checks its signature, answers 500 to the first
    ``failing`` posts."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.failing = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                with receiver.lock:
                    refuse = receiver.failing > 0
                    receiver.failing -= refuse
                    receiver.posts.append(
                        {
                            "path": self.path,
                            "delivery": self.headers["X-F8A-Jobs-Delivery"],
                            "signed": hmac.compare_digest(
                                expected, self.headers.get("X-F8A-Jobs-Signature", "")
                            ),
                            "body": json.loads(body),
                            "answered": 500 if refuse else 200,
                        }
                    )
                self.send_response(500 if refuse else 200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def at(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [post for post in self.posts if post["path"] == path]


class Smtp:
    """An SMTP server on one port that a test can stop and start again."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture(scope="module")
def smtp() -> Iterator[Smtp]:
    server = Smtp()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory, pytestconfig, smtp, receiver):
    env = {
        "F8A_JOBS_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}?from=jobs@example.org",
        "F8A_JOBS_WEBHOOK_SECRET": SECRET,
        "F8A_JOBS_ALERT_BACKOFF": "0.2",
        "F8A_JOBS_PUBLIC_URL": "https://jobs.example.org",
    }
    tmp = tmp_path_factory.mktemp(f"alerts-{request.param}")
    with module_server(request.param, tmp, pytestconfig, **env) as server:
        yield server


@pytest.fixture
def api(server, smtp, receiver):
    wipe(server.engine)
    smtp.inbox.messages.clear()
    with receiver.lock:
        receiver.posts.clear()
        receiver.failing = 0
    return server


def create(api, job_id: str, alerts_: list[dict[str, Any]], **job: Any) -> None:
    body = {"job_id": job_id, "handler": "Chatty", "when": "2099-01-01T00:00:00Z", **job}
    response = api.post("/jobs", json={**body, "alerts": alerts_})
    assert response.status_code == 201, response.text


def run_once(api, job_id: str, status: str) -> dict[str, Any]:
    """Run the job now and wait for its run to end as ``status``; the run, with its alerts."""
    run_id = api.post(f"/jobs/{job_id}/run").json()["run"]["run_id"]

    def ended():
        run = api.get(f"/jobs/{job_id}/runs/{run_id}").json()["run"]
        return run if run["finished_at"] else None

    run = poll(ended, timeout=30)
    assert run["status"] == status, run
    return run


def sent(api, job_id: str, run_id: str, count: int) -> list[dict[str, Any]]:
    """The run's alerts once ``count`` of them are sent (they are all raised by then: in the
    transaction that recorded the run's end)."""

    def delivered():
        shown = api.get(f"/jobs/{job_id}/runs/{run_id}").json()["run"]["alerts"]
        return shown if sum(alert["status"] == "sent" for alert in shown) == count else None

    shown = poll(delivered, timeout=30)
    assert len(shown) == count, shown
    return shown


def alerts_of(api, job_id: str) -> int:
    with api.engine.connect() as connection:
        query = select(func.count()).select_from(alerts).where(alerts.c.job_id == job_id)
        return int(connection.execute(query).scalar_one())


def test_a_failed_run_alerts_once_after_its_last_try_by_mail_and_webhook(api, smtp, receiver):
    targets = [
        {"email": "ops@example.org"},
        {"webhook": f"{receiver.url}/hook", "on": ["failure", "success"]},
    ]
    create(api, "nightly", targets, kwargs={"fail": True, "lines": 25}, tries=3, retry_delay=0)
    run = run_once(api, "nightly", "failed")
    assert run["tries"] == 3
    shown = sent(api, "nightly", run["run_id"], 2)
    targets_shown = sorted(alert["target"] for alert in shown)
    assert targets_shown[0] == "email ops@example.org"
    assert re.fullmatch(rf"webhook {receiver.url}/\*\*\*[0-9a-f]{{8}}", targets_shown[1])  # no path
    assert alerts_of(api, "nightly") == 2  # one per target for the run, none per try
    [post] = receiver.at("/hook")
    assert post["signed"] and post["answered"] == 200
    body = post["body"]
    assert body["event"] == "failure" and body["run_id"] == run["run_id"]
    assert body["delivery"] == post["delivery"] in {alert["delivery"] for alert in shown}
    assert body["summary"] == "the run failed after 3 tries"
    assert body["url"] == f"https://jobs.example.org/api/v1/jobs/nightly/runs/{run['run_id']}"
    assert [item["try"] for item in body["failed_tries"]] == [1, 2, 3]
    assert all(len(item["lines"]) == 20 for item in body["failed_tries"])  # the last 20
    assert any("chatty line 24" in line for line in body["failed_tries"][2]["lines"])
    [message] = smtp.inbox.messages
    assert message["To"] == "ops@example.org" and message["From"] == "jobs@example.org"
    assert message["Subject"].startswith("[f8a-jobs] failure: nightly (run ")
    text = message.get_content()
    assert body["error"].splitlines()[0] in text and "chatty line 24" in text


def test_after_failures_and_recovery(api, receiver):
    target = {"webhook": f"{receiver.url}/n", "on": ["failure", "recovery"], "after_failures": 2}
    create(api, "flaky", [target], kwargs={"fail": True, "lines": 1})
    first = run_once(api, "flaky", "failed")
    second = run_once(api, "flaky", "failed")
    sent(api, "flaky", second["run_id"], 1)
    assert api.get(f"/jobs/flaky/runs/{first['run_id']}").json()["run"]["alerts"] == []
    assert api.patch("/jobs/flaky", json={"kwargs": {"fail": False, "lines": 1}}).status_code == 200
    fixed = run_once(api, "flaky", "succeeded")
    [recovery] = sent(api, "flaky", fixed["run_id"], 1)
    assert recovery["event"] == "recovery"
    again = run_once(api, "flaky", "succeeded")  # a success after a success: no recovery
    assert api.get(f"/jobs/flaky/runs/{again['run_id']}").json()["run"]["alerts"] == []
    assert [post["body"]["event"] for post in receiver.at("/n")] == ["failure", "recovery"]


def test_repeat_every_sends_at_most_one_alert_of_a_kind_per_period(api, receiver):
    target = {"webhook": f"{receiver.url}/r", "repeat_every": "1 hour"}
    create(api, "noisy", [target], kwargs={"fail": True, "lines": 1})
    runs = [run_once(api, "noisy", "failed") for _ in range(3)]
    sent(api, "noisy", runs[0]["run_id"], 1)
    assert alerts_of(api, "noisy") == 1
    assert len(receiver.at("/r")) == 1


def test_smtp_down_delays_the_mail_and_sends_it_once(api, smtp):
    inbox = smtp.inbox
    create(api, "mailed", [{"email": "ops@example.org"}], kwargs={"fail": True, "lines": 1})
    smtp.stop()
    try:
        run = run_once(api, "mailed", "failed")

        def retried():
            [alert] = api.get(f"/jobs/mailed/runs/{run['run_id']}").json()["run"]["alerts"]
            return alert if alert["tries"] >= 2 else None

        pending = poll(retried, timeout=30)
        assert pending["status"] == "pending" and "smtp 127.0.0.1" in pending["error"]
        assert pending["next_try_at"] is not None
    finally:
        smtp.start()
    [delivered] = sent(api, "mailed", run["run_id"], 1)
    assert delivered["delivery"] == pending["delivery"] and delivered["error"] is None
    assert len(inbox.messages) == 1
    assert inbox.messages[0]["X-F8A-Jobs-Delivery"] == delivered["delivery"]


def test_a_webhook_answering_500_is_retried_under_one_delivery_id(api, receiver):
    receiver.failing = 2
    create(api, "hooked", [{"webhook": f"{receiver.url}/500"}], kwargs={"fail": True, "lines": 1})
    run = run_once(api, "hooked", "failed")
    [alert] = sent(api, "hooked", run["run_id"], 1)
    posts = receiver.at("/500")
    assert [post["answered"] for post in posts] == [500, 500, 200]
    assert {post["delivery"] for post in posts} == {alert["delivery"]}
    assert all(post["signed"] for post in posts)
    assert posts[0]["body"] == posts[2]["body"]  # the same report on every retry
    assert alert["tries"] == 3


def test_slack_format_posts_a_text(api, receiver):
    target = {"webhook": f"{receiver.url}/slack", "format": "slack"}
    create(api, "chat", [target], kwargs={"fail": True, "lines": 1})
    run = run_once(api, "chat", "failed")
    sent(api, "chat", run["run_id"], 1)
    [post] = receiver.at("/slack")
    assert list(post["body"]) == ["text"] and "chat" in post["body"]["text"]


def test_a_failed_workflow_run_reports_each_task(api, smtp, receiver):
    tasks = [
        {"name": "extract", "handler": "Chatty", "kwargs": {"tag": "extract", "lines": 2}},
        {
            "name": "load",
            "handler": "Chatty",
            "kwargs": {"tag": "load", "fail": True, "lines": 3},
            "depends_on": ["extract"],
            "tries": 2,
            "retry_delay": 0,
        },
        {"name": "publish", "handler": "Chatty", "depends_on": ["load"]},
    ]
    body = {"job_id": "etl", "tasks": tasks, "when": "2099-01-01T00:00:00Z"}
    targets = [{"email": "data@example.org"}, {"webhook": f"{receiver.url}/etl"}]
    assert api.post("/jobs", json={**body, "alerts": targets}).status_code == 201
    run = run_once(api, "etl", "failed")
    sent(api, "etl", run["run_id"], 2)
    [post] = receiver.at("/etl")
    report = post["body"]
    states = {task["task"]: task["state"] for task in report["tasks"]}
    assert states == {"extract": "succeeded", "load": "failed", "publish": "upstream_failed"}
    assert [(item["task"], item["try"]) for item in report["failed_tries"]] == [
        ("load", 1),
        ("load", 2),
    ]
    assert any("load line 2" in line for line in report["failed_tries"][1]["lines"])
    [message] = smtp.inbox.messages
    text = message.get_content()
    assert "upstream_failed" in text and "load line 2" in text
    retried = api.post(f"/jobs/etl/runs/{run['run_id']}/retry")
    assert retried.status_code == 202, retried.text

    def failed_again():
        shown = api.get(f"/jobs/etl/runs/{run['run_id']}").json()["run"]
        return shown if shown["status"] == "failed" and shown["attempts"] else None

    poll(failed_again, timeout=30)
    poll(lambda: len(receiver.at("/etl")) == 2, timeout=30)  # each attempt alerts


def test_webhook_urls_are_shown_masked_and_kept_by_edits(api, receiver):
    targets = [
        {"email": "ops@example.org", "on": ["success"]},
        {"webhook": f"{receiver.url}/secret-a", "on": ["success"]},
        {"webhook": f"{receiver.url}/secret-b", "on": ["success"]},  # the same host
    ]
    create(api, "edited", targets, kwargs={"lines": 0})
    shown = api.get("/jobs/edited").json()["job"]["alerts"]
    masks = [target["webhook"] for target in shown[1:]]
    assert all(mask.startswith(f"{receiver.url}/***") for mask in masks)
    assert masks[0] != masks[1] and "format" not in shown[0]  # an email target has none
    edited = api.patch("/jobs/edited", json={"kwargs": {"lines": 1}, "alerts": shown})
    assert edited.status_code == 200, edited.text
    history = api.get("/jobs/edited/history").json()["entries"]
    assert "secret-" not in json.dumps(history) + json.dumps(edited.json())
    run = run_once(api, "edited", "succeeded")
    sent(api, "edited", run["run_id"], 3)
    assert len(receiver.at("/secret-a")) == len(receiver.at("/secret-b")) == 1  # stored URLs
    unknown = {"webhook": f"{receiver.url}/***00000000"}  # a mask of no stored target
    refused = api.patch("/jobs/edited", json={"alerts": [unknown]})
    assert refused.status_code == 400 and "alerts[0].webhook" in refused.text
    not_text = api.patch("/jobs/edited", json={"alerts": [{"webhook": []}]})
    assert not_text.status_code == 400, not_text.text


@pytest.mark.parametrize(
    ("target", "key"),
    [
        ({"email": "not an address"}, "email"),
        ({"webhook": "ftp://example.org/x"}, "webhook"),
        ({"email": "a@example.org", "on": ["exploded"]}, "on"),
        ({"email": "a@example.org", "after_failures": 0}, "after_failures"),
        ({"email": "a@example.org", "webhook": "https://example.org"}, ""),
        ({"email": "a@example.org", "when": "always"}, "when"),
        ({"webhook": "http://[::1"}, "webhook"),  # a malformed host
        ({"email": "a:b@example.org"}, "email"),  # a mail header would read a group
        ({"email": "a@example.org", "format": "slack"}, "format"),
    ],
)
def test_a_bad_target_is_a_400_naming_it(api, target, key):
    body = {"job_id": "bad", "handler": "Chatty", "when": "2099-01-01T00:00:00Z", "alerts": [target]}
    response = api.post("/jobs", json=body)
    assert response.status_code == 400, response.text
    field = response.json()["field"]  # the API's schema, or the service: both name it
    assert field.replace("body.", "").replace(".0", "[0]", 1).startswith("alerts[0]"), field
    assert key in field, field
    assert api.get("/jobs/bad").status_code == 404


def alert_rows(engine, job_id: str) -> list[tuple[str, str | None]]:
    with engine.connect() as connection:
        query = select(alerts.c.event, alerts.c.status).where(alerts.c.job_id == job_id)
        return [tuple(row) for row in connection.execute(query.order_by(alerts.c.id))]


def test_missed_and_late_alert_after_the_service_was_down(tmp_path, server_factory, receiver):
    """Slots that passed while the service was down alert when it is back: from the rows."""
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    env = {"F8A_JOBS_WEBHOOK_SECRET": SECRET, "F8A_JOBS_ALERT_BACKOFF": "0.2"}
    server = server_factory(url, F8A_JOBS_WORKERS="1", **env).start()
    hook = {"webhook": f"{receiver.url}/restart", "on": ["late", "missed"], "late_after": 1}
    soon = utcnow() + timedelta(seconds=4)
    jobs = [
        {"job_id": "every-2s", "periodically": "2 seconds"},
        {"job_id": "once", "when": soon.isoformat()},
        {"job_id": "paused", "when": soon.isoformat(), "state": "paused"},
    ]
    for job in jobs:
        body = {**job, "handler": "Chatty", "kwargs": {"lines": 0}, "alerts": [hook]}
        assert server.post("/jobs", json=body).status_code == 201, job
    server.stop(signal.SIGKILL)
    poll(lambda: utcnow() > soon + timedelta(seconds=3), timeout=10, interval=0.2)
    restarted = server_factory(url, F8A_JOBS_WORKERS="1", **env).start()
    engine = build_engine(url)
    try:
        poll(lambda: ("missed", "sent") in alert_rows(engine, "every-2s"), timeout=30)
        poll(lambda: alert_rows(engine, "once") == [("late", "sent")], timeout=30)
        run = poll(lambda: restarted.get("/jobs/once/runs").json()["runs"], timeout=30)[0]
        poll(lambda: restarted.get(f"/jobs/once/runs/{run['run_id']}").json()["run"]["finished_at"])
        assert alert_rows(engine, "once") == [("late", "sent")]  # the check and the end: once
        assert alert_rows(engine, "paused") == []  # a paused job is never late
        events = {(post["body"]["job_id"], post["body"]["event"]) for post in receiver.at("/restart")}
        assert {("every-2s", "missed"), ("once", "late")} <= events  # every-2s was late too
        assert not any(job_id == "paused" for job_id, _ in events)
    finally:
        engine.dispose()


def test_a_run_waiting_past_late_after_alerts_late(tmp_path, server_factory, receiver):
    """One executor thread, held by a blocking run: the next job's run waits queued."""
    url = f"sqlite:///{tmp_path / 'late.db'}"
    env = {"F8A_JOBS_WEBHOOK_SECRET": SECRET, "F8A_JOBS_EXECUTOR_THREADS": "1"}
    server = server_factory(url, F8A_JOBS_WORKERS="1", **env).start()
    blocker = {"job_id": "blocker", "handler": "Sleep", "kwargs": {"seconds": 8}, "alerts": []}
    assert server.post("/jobs", json={**blocker, "when": "2099-01-01T00:00:00Z"}).status_code == 201
    assert server.post("/jobs/blocker/run").status_code == 202
    poll(lambda: server.get("/jobs/blocker/runs").json()["runs"][0]["status"] == "running")
    hook = {"webhook": f"{receiver.url}/late", "on": ["late"], "late_after": 1}
    waiting = {"job_id": "waiting", "handler": "Chatty", "alerts": [hook]}
    when = (utcnow() + timedelta(seconds=1)).isoformat()
    assert server.post("/jobs", json={**waiting, "when": when}).status_code == 201
    [post] = poll(lambda: receiver.at("/late"), timeout=30)
    assert post["body"]["event"] == "late" and post["body"]["status"] == "queued"
    run = server.get("/jobs/waiting/runs").json()["runs"][0]
    assert run["started_at"] is None  # alerted while it still waited
