"""The size limit of request bodies (``F8A_JOBS_MAX_BODY_BYTES``).

Every body is read whole before it is parsed, so without a limit one request holds as much
memory as it likes, and a job stored from it is sent back to every reader. A body whose
``Content-Length`` is past the limit is refused unread; one sent without it (chunked) is
counted while it is read.
"""

from __future__ import annotations

from typing import Any

from f8a_jobs.api.errors import problem_response

Message = dict[str, Any]


class LimitBodySize:
    """ASGI middleware: a body past ``limit`` bytes is a 413 naming the limit; the paths of
    ``larger`` have limits of their own (path → the limit and the setting that sets it)."""

    def __init__(
        self, app: Any, limit: int, larger: dict[str, tuple[int, str]] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.larger = larger or {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope["headers"]) if scope["type"] == "http" else {}
        declared = headers.get(b"content-length")
        if declared is None and b"transfer-encoding" not in headers:  # no body
            await self.app(scope, receive, send)
            return
        limit, setting = self.larger.get(scope["path"], (self.limit, "F8A_JOBS_MAX_BODY_BYTES"))
        if declared is not None:  # the server reads no more than it declares
            if int(declared) > limit:
                await _refuse(limit, setting, scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        messages = await _read(receive, limit)
        if messages is None:
            await _refuse(limit, setting, scope, receive, send)
            return
        await self.app(_with_length(scope, messages), _replay(messages, receive), send)


async def _read(receive: Any, limit: int) -> list[Message] | None:
    """The body's messages, or None once they pass ``limit``."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if message["type"] != "http.request" or not message.get("more_body"):
            return messages


async def _refuse(limit: int, setting: str, scope: Any, receive: Any, send: Any) -> None:
    detail = f"larger than the limit of {limit} bytes ({setting})"
    await problem_response(413, "body", detail)(scope, receive, send)


def _with_length(scope: Any, messages: list[Message]) -> Any:
    """The request as if it had said its length: Connexion reads a body only when
    ``Content-Length`` says there is one."""
    size = sum(len(message.get("body", b"")) for message in messages)
    headers = [(name, value) for name, value in scope["headers"] if name != b"transfer-encoding"]
    return {**scope, "headers": [*headers, (b"content-length", str(size).encode())]}


def _replay(messages: list[Message], receive: Any) -> Any:
    """``receive`` that first hands out the messages read already."""
    pending = iter(messages)

    async def replayed() -> Message:
        return next(pending, None) or await receive()

    return replayed
