"""Alert delivery (``core.alert_report``, ``execution.delivery``) against real servers: aiosmtpd
in this process (plain, STARTTLS with AUTH, TLS) and an HTTP receiver checking signatures."""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from f8a_jobs.core import alert_report
from f8a_jobs.core.alert_report import body_bytes, mail, parse_smtp_url, signature, slack
from f8a_jobs.core.errors import ConfigurationError
from f8a_jobs.execution.delivery import DeliveryError, post_webhook, send_mail
from tests.conftest import free_port

PASSWORD = "s3cr:et@pw"
SECRET = "hook-secret"
RFC_4231_CASE_2 = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
REPORT: dict[str, Any] = {
    "delivery": "d-42", "event": "failure", "job_id": "nightly-export",
    "run_id": "0123abcd-4567-89ef-0123-456789abcdef", "status": "failed",
    "started_by": "scheduler", "trigger": "schedule", "scheduled_for": "2024-05-01T02:00:00+00:00",
    "started_at": "2024-05-01T02:00:01+00:00", "finished_at": "2024-05-01T02:03:04+00:00",
    "duration_seconds": 183.0, "error": "RuntimeError: export <failed> & stopped\nTraceback line 2",
    "tasks": [
        {"task": "fetch", "part": None, "state": "succeeded", "tries": 1, "error": None},
        {"task": "export", "part": 3, "state": "failed", "tries": 3, "error": "RuntimeError: boom"},
    ],
    "failed_tries": [{"task": "export", "try": 3, "lines": ["starting export", "disk full — ünïcode"]}],
    "url": "https://jobs.example/ui/runs/0123abcd", "summary": "the run failed after 3 tries",
}  # fmt: skip


def test_parse_smtp_url_good() -> None:
    plain = ("smtp", "mail.example", 25, None, None, "f8a-jobs@mail.example")
    assert astuple(parse_smtp_url("smtp://mail.example")) == plain
    url = "smtps://al%40ice:s3cr%3Aet%40pw@mail.example:2465?from=jobs%40corp.example"
    secure = ("smtps", "mail.example", 2465, "al@ice", PASSWORD, "jobs@corp.example")
    assert astuple(parse_smtp_url(url)) == secure
    assert astuple(parse_smtp_url("SMTPS://u@Mail.Example/")) == (
        "smtps", "mail.example", 465, "u", None, "f8a-jobs@mail.example"
    )  # fmt: skip
    assert PASSWORD not in repr(parse_smtp_url(url)) and "s3cr" not in repr(parse_smtp_url(url))


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://u:s3cr%3Aet%40pw@mail.example", "scheme"),
        ("smtp://u:s3cr%3Aet%40pw@", "no host"),
        ("smtp://u:s3cr%3Aet%40pw@mail.example:99999", "port"),
        ("smtp://u:s3cr%3Aet%40pw@mail.example:0", "port"),
        ("smtp://u:s3cr%3Aet%40pw", "port"),  # "@host" forgotten: the password is the port
        ("smtp://u:s3cr%3Aet%40pw@mail.example?to=x@y", "unknown query parameter 'to'"),
        ("smtp://u:s3cr%3Aet%40pw@mail.example?from=nobody", "not a mail address"),
        ("smtp://u:s3cr%3Aet%40pw@mail.example/inbox", "path"),
    ],
)
def test_parse_smtp_url_bad(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_smtp_url(url)
    message = str(caught.value)
    assert message.startswith("F8A_JOBS_SMTP_URL: ") and problem in message
    assert caught.value.field == "F8A_JOBS_SMTP_URL"
    assert "s3cr" not in message


def test_mail_says_what_happened() -> None:
    subject, text = mail(REPORT)
    assert subject == "[f8a-jobs] failure: nightly-export (run 0123abcd…)"
    assert text.startswith("the run failed after 3 tries\n")
    for line in ("job:        nightly-export", "started by: scheduler", "duration:   3 min 03 s"):
        assert line in text
    assert "  RuntimeError: export <failed> & stopped\n  Traceback line 2" in text
    table = text.split("tasks:\n")[1].splitlines()
    assert table[0].split() == ["task", "part", "state", "tries", "error"]
    assert table[1].split() == ["fetch", "succeeded", "1"]
    assert table[2].split() == ["export", "3", "failed", "3", "RuntimeError:", "boom"]
    assert "  export, try 3:\n    starting export\n    disk full — ünïcode" in text
    assert text.rstrip().endswith("link:       https://jobs.example/ui/runs/0123abcd")
    # a late slot: no run, no status, no error, no link; left out, not shown empty
    late = {"delivery": "d", "event": "late", "job_id": "j", "run_id": None, "status": None,
            "scheduled_for": "2024-05-01T02:00:00+00:00", "tasks": [], "failed_tries": [],
            "error": None, "url": None, "duration_seconds": None}  # fmt: skip
    subject, text = mail(late)
    assert subject == "[f8a-jobs] late: j (slot 2024-05-01T02:00:00+00:00)"
    assert text == "job:        j\nevent:      late\nslot:       2024-05-01T02:00:00+00:00\n"


def test_slack_message() -> None:
    assert list(slack(REPORT)) == ["text"]
    text = slack(REPORT)["text"]
    assert text.startswith("*[f8a-jobs] failure*: job `nightly-export` run `0123abcd…` (failed)")
    assert "the run failed after 3 tries" in text
    assert "> RuntimeError: export &lt;failed&gt; &amp; stopped" in text
    assert "Traceback line 2" not in text
    assert text.endswith("<https://jobs.example/ui/runs/0123abcd|Open the run>")


def test_body_bytes_and_signature() -> None:
    body = body_bytes(REPORT)
    assert json.loads(body) == REPORT
    assert body.startswith(b'{"delivery":"d-42","duration_seconds":183.0,')
    assert "ünïcode".encode() in body
    assert json.loads(body_bytes({"line": "\ud800"})) == {"line": "\ud800"}
    assert signature(b"what do ya want for nothing?", "Jefe") == RFC_4231_CASE_2
    assert signature(b"x", "k") != signature(b"y", "k") != signature(b"x", "l")


class Inbox:
    """aiosmtpd's handler: keeps each message before it answers 250 (no wait in the tests)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], email.message.EmailMessage, bool]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        sent = (envelope.mail_from, envelope.rcpt_tos, parsed, bool(session.authenticated))
        self.messages.append(sent)
        return "250 OK"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    good = isinstance(data, LoginPassword) and data == (b"alice", PASSWORD.encode())
    return AuthResult(success=good, handled=False)  # handled=False: aiosmtpd answers 535


@contextmanager
def smtp(**options: Any) -> Iterator[tuple[int, Inbox]]:
    """aiosmtpd in a thread of this process; ``options`` go to its ``SMTP`` (TLS, AUTH)."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


def local(scheme: str, port: int, userinfo: str = "", query: str = "") -> alert_report.SmtpServer:
    return parse_smtp_url(f"{scheme}://{userinfo}127.0.0.1:{port}{query}")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server's TLS with a self-signed certificate for 127.0.0.1, and a client's that trusts
    it (and nothing else)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "f8a-jobs test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    both = tmp_path_factory.mktemp("tls") / "both.pem"
    private = key.private_bytes(pem, pkcs8, serialization.NoEncryption())
    both.write_bytes(cert.public_bytes(pem) + private)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(both)
    return server, ssl.create_default_context(cadata=cert.public_bytes(pem).decode())


def test_mail_over_plain_smtp() -> None:
    with smtp() as (port, inbox):
        send_mail(local("smtp", port, query="?from=jobs@corp.example"), "ops@x.org", REPORT)
        [(sender, recipients, message, authenticated)] = inbox.messages
        assert (sender, recipients, authenticated) == ("jobs@corp.example", ["ops@x.org"], False)
        assert message["Subject"] == "[f8a-jobs] failure: nightly-export (run 0123abcd…)"
        assert (message["From"], message["To"]) == ("jobs@corp.example", "ops@x.org")
        assert message["X-F8A-Jobs-Delivery"] == "d-42"
        assert message["Message-ID"].endswith("@corp.example>") and message["Date"].datetime.tzinfo
        assert message.get_content().replace("\r\n", "\n") == mail(REPORT)[1]
        # A username, and the server offers no STARTTLS: the password is not sent in clear.
        with pytest.raises(DeliveryError, match="offers no STARTTLS") as caught:
            send_mail(local("smtp", port, "alice:s3cr%3Aet%40pw@"), "ops@x.org", REPORT)
        assert "s3cr" not in str(caught.value) and len(inbox.messages) == 1


def test_mail_over_tls_with_login(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_tls, client_tls = tls
    options = {"tls_context": server_tls, "require_starttls": True, "authenticator": authenticate}
    with smtp(**options) as (port, inbox):
        good = local("smtp", port, "alice:s3cr%3Aet%40pw@")
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED") as untrusted:
            send_mail(good, "ops@x.org", REPORT)  # the system's CAs, which do not know ours
        wrong = local("smtp", port, "alice:wrong-pw@")
        with pytest.raises(DeliveryError, match=rf"^smtp 127\.0\.0\.1:{port}: 535 ") as refused:
            send_mail(wrong, "ops@x.org", REPORT, ssl_context=client_tls)
        assert "s3cr" not in str(untrusted.value) and "wrong-pw" not in str(refused.value)
        assert inbox.messages == []
        send_mail(good, "ops@x.org", REPORT, ssl_context=client_tls)
        [(_, _, message, authenticated)] = inbox.messages
        assert authenticated and message["X-F8A-Jobs-Delivery"] == "d-42"
    with smtp(ssl_context=server_tls) as (port, inbox):
        send_mail(local("smtps", port), "ops@x.org", REPORT, ssl_context=client_tls)
        [(sender, _, message, _)] = inbox.messages
        assert sender == "f8a-jobs@127.0.0.1" and message["X-F8A-Jobs-Delivery"] == "d-42"


def test_servers_down() -> None:
    """Nothing listens: the errors name the server, and a webhook's not its URL's path."""
    port = free_port()
    with pytest.raises(DeliveryError, match=rf"^smtp 127\.0\.0\.1:{port}: .*refused"):
        send_mail(local("smtp", port), "ops@x.org", REPORT, timeout=5)
    with pytest.raises(DeliveryError) as caught:
        post_webhook(f"http://127.0.0.1:{port}/services/T0/B0/XYZ", REPORT, SECRET, timeout=5)
    assert str(caught.value) == f"webhook 127.0.0.1:{port}: cannot connect: Connection refused"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


class Receiver(ThreadingHTTPServer):
    """A webhook receiver: records each post, checks its signature, refuses the first ``fail``
    with a 500, answers the others with ``status``."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.posts: list[tuple[str, dict[str, str], bytes, bool]] = []
        self.fail, self.status = 0, 204
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        signed = self.headers.get("X-F8A-Jobs-Signature") == signature(body, SECRET)
        self.server.posts.append((self.path, dict(self.headers), body, signed))
        refuse, self.server.fail = self.server.fail > 0, max(self.server.fail - 1, 0)
        answer = b"busy: " + b"x" * 500 if refuse else b""
        self.send_response(500 if refuse else self.server.status)
        self.send_header("Location", self.server.url + "/elsewhere")  # read on a 3xx only
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server
        server.shutdown()


def test_webhook_signed_unsigned_and_slack(receiver: Receiver) -> None:
    post_webhook(receiver.url + "/hooks/alerts", REPORT, SECRET)
    post_webhook(receiver.url, REPORT, None)
    post_webhook(receiver.url + "/services/T0/B0/XYZ", REPORT, SECRET, slack=True)
    posts = receiver.posts
    [(path, headers, body, signed), (_, unsigned, _, _), (_, _, slack_body, slack_signed)] = posts
    assert (path, body, signed, slack_signed) == ("/hooks/alerts", body_bytes(REPORT), True, True)
    assert headers["Content-Type"] == "application/json" and headers["User-Agent"] == "f8a-jobs"
    assert headers["X-F8A-Jobs-Delivery"] == unsigned["X-F8A-Jobs-Delivery"] == "d-42"
    assert "X-F8A-Jobs-Signature" not in unsigned
    assert json.loads(slack_body) == slack(REPORT)


def test_webhook_refused_then_accepted(receiver: Receiver) -> None:
    receiver.fail = 2
    for _ in range(2):
        with pytest.raises(DeliveryError) as caught:
            post_webhook(receiver.url + "/services/T0/B0/XYZ", REPORT, SECRET)
        message = str(caught.value)
        # the answer's text is logged, never kept: it may come from inside the network
        assert message == f"webhook 127.0.0.1:{receiver.server_address[1]}: answered 500"
    post_webhook(receiver.url, REPORT, SECRET)
    assert [signed for *_, signed in receiver.posts] == [True, True, True]
    receiver.status = 302  # a redirect is an error to fix, not followed
    with pytest.raises(DeliveryError, match="answered 302"):
        post_webhook(receiver.url + "/moved", REPORT, SECRET)
    assert [path for path, *_ in receiver.posts][-1:] == ["/moved"]
    assert len(receiver.posts) == 4
