"""Sending an alert's report: a mail over SMTP, or a JSON post to a webhook (Slack's too).

What a report says is decided in ``core.alert_report``; this module only talks to the servers.
Every failure becomes one ``DeliveryError`` whose message is fit to show an operator: it names
the server and the reason, never the SMTP password, the webhook secret, nor a webhook URL's
path (a Slack URL's path is its secret).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import urlsplit

import requests

from f8a_jobs.core import alert_report
from f8a_jobs.core.alert_report import SmtpServer, body_bytes, mail, signature
from f8a_jobs.core.clock import utcnow

log = logging.getLogger(__name__)

DELIVERY_HEADER = "X-F8A-Jobs-Delivery"
SIGNATURE_HEADER = "X-F8A-Jobs-Signature"
RESPONSE_SHOWN = 200  # characters of a refusing webhook's answer logged (never stored)


class DeliveryError(Exception):
    """A report could not be delivered; the message names the server and why, nothing secret."""


class DeliveryRefused(DeliveryError):
    """A delivery that cannot succeed as configured: retrying would not help."""


def send_mail(
    server: SmtpServer,
    to: str,
    report: dict[str, Any],
    timeout: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Mail ``report`` to ``to`` through ``server``.

    ``smtps`` is TLS from the first byte; ``smtp`` upgrades with STARTTLS whenever the server
    offers it. A password is never sent over a connection that is not encrypted: a server with
    a username but no TLS is refused rather than handed the password in clear. ``ssl_context``
    is the TLS to trust (the system's CAs when None; a test's own CA otherwise).
    """
    where = f"smtp {server.host}:{server.port}"
    message = _message(server, to, report, where)
    context = ssl_context or ssl.create_default_context()
    try:
        if server.scheme == "smtps":
            with smtplib.SMTP_SSL(
                server.host, server.port, timeout=timeout, context=context
            ) as client:
                _deliver(client, server, message, to, encrypted=True)
        else:
            with smtplib.SMTP(server.host, server.port, timeout=timeout) as client:
                _deliver(client, server, message, to, encrypted=_starttls(client, context))
    except (smtplib.SMTPException, OSError) as error:  # ssl.SSLError is an OSError
        raise DeliveryError(f"{where}: {_smtp_reason(error, server.password)}") from error


def _message(server: SmtpServer, to: str, report: dict[str, Any], where: str) -> EmailMessage:
    subject, text = mail(report)
    message = EmailMessage()
    try:
        message["From"] = server.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = format_datetime(utcnow())
        # make_msgid's default domain is the machine's FQDN: a DNS lookup, sometimes slow.
        message["Message-ID"] = make_msgid(domain=server.sender.rpartition("@")[2] or server.host)
        message[DELIVERY_HEADER] = str(report.get("delivery", ""))
    except ValueError as error:  # a line break in a header: refused, not injected
        raise DeliveryError(f"{where}: the mail's headers are unusable: {error}") from error
    message.set_content(text)
    return message


def _starttls(client: smtplib.SMTP, context: ssl.SSLContext) -> bool:
    """Upgrade to TLS when the server offers it; whether the connection is now encrypted."""
    client.ehlo_or_helo_if_needed()
    if not client.has_extn("starttls"):
        return False
    client.starttls(context=context)
    client.ehlo()  # what the server offers may change once encrypted (AUTH, typically)
    return True


def _deliver(
    client: smtplib.SMTP, server: SmtpServer, message: EmailMessage, to: str, encrypted: bool
) -> None:
    if server.username:
        if not encrypted:
            raise DeliveryRefused(
                f"smtp {server.host}:{server.port}: the server offers no STARTTLS; "
                "the password is not sent over an unencrypted connection (use smtps://)"
            )
        client.login(server.username, server.password or "")
    client.send_message(message, from_addr=server.sender, to_addrs=[to])


def _smtp_reason(error: BaseException, password: str | None) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        reply = error.smtp_error
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        reason = f"{error.smtp_code} {text}"
    elif isinstance(error, smtplib.SMTPRecipientsRefused):
        reason = "recipients refused: " + ", ".join(sorted(error.recipients))
    else:
        reason = str(error) or type(error).__name__
    # A server that echoes what it was sent must not get the password into our message.
    return reason.replace(password, "***") if password else reason


def post_webhook(
    url: str,
    report: dict[str, Any],
    secret: str | None,
    slack: bool = False,
    timeout: float = 10.0,
) -> None:
    """POST ``report`` as JSON to ``url`` (as a Slack message when ``slack``).

    With a ``secret``, ``X-F8A-Jobs-Signature`` signs the exact bytes sent, so the receiver can
    check them. Redirects are not followed: a moved endpoint is an error to fix, not a place to
    resend a signed report to. Errors name the host only, never the URL's path.
    """
    body = body_bytes(alert_report.slack(report) if slack else report)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "f8a-jobs",
        DELIVERY_HEADER: str(report.get("delivery", "")),
    }
    if secret:
        headers[SIGNATURE_HEADER] = signature(body, secret)
    where = f"webhook {_host(url)}"
    try:
        with requests.post(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True
        ) as response:
            if not 200 <= response.status_code < 300:
                # the answer's start goes to the log only: an error is shown on the run, and
                # the URL may be one inside the network that the job's writer cannot reach
                log.warning("%s answered %s: %r", where, response.status_code, _start_of(response))
                raise DeliveryError(f"{where}: answered {response.status_code}")
    except requests.RequestException as error:
        # Not chained: requests' own messages quote the whole URL.
        raise DeliveryError(f"{where}: {_request_reason(error, timeout)}") from None


def _host(url: str) -> str:
    """``host[:port]`` of a URL, without its user, password, path or query."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "(an unusable URL)"
    if not host:
        return "(an unusable URL)"
    return f"{host}:{port}" if port else host


def _start_of(response: requests.Response) -> str:
    """The first characters of an answer, reading no more of it than that."""
    try:
        start = response.raw.read(RESPONSE_SHOWN * 4, decode_content=True)
    except Exception:  # the status code alone still says what went wrong
        return ""
    text: str = start.decode(response.encoding or "utf-8", "replace")
    return text[:RESPONSE_SHOWN]


def _request_reason(error: requests.RequestException, timeout: float) -> str:
    if isinstance(error, requests.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(error, requests.ConnectionError):
        return f"cannot connect: {_os_reason(error)}"
    unusable = (
        requests.exceptions.InvalidURL,
        requests.exceptions.InvalidSchema,
        requests.exceptions.MissingSchema,
    )
    if isinstance(error, unusable):
        return "not a usable http(s) URL"
    return type(error).__name__


def _os_reason(error: BaseException) -> str:
    """The socket's own reason ("Connection refused", "Name or service not known") under
    requests' and urllib3's wrappers, whose messages quote the URL."""
    seen: BaseException | None = error
    for _ in range(8):  # the wrappers are a few deep; never loop on a cycle
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.strerror:
            return str(seen.strerror)
        reason = getattr(seen, "reason", None)
        seen = reason if isinstance(reason, BaseException) else seen.__cause__ or seen.__context__
    return "the connection failed"
