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
    """ASGI middleware: a body past ``limit`` bytes is a 413 naming the limit."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope["headers"]) if scope["type"] == "http" else {}
        declared = headers.get(b"content-length")
        if declared is None and b"transfer-encoding" not in headers:  # no body
            await self.app(scope, receive, send)
            return
        if declared is not None:  # the server reads no more than it declares
            if int(declared) > self.limit:
                await self._refuse(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        messages = await self._read(receive)
        if messages is None:
            await self._refuse(scope, receive, send)
            return
        await self.app(_with_length(scope, messages), _replay(messages, receive), send)

    async def _read(self, receive: Any) -> list[Message] | None:
        """The body's messages, or None once they pass the limit."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.limit:
                return None
            if message["type"] != "http.request" or not message.get("more_body"):
                return messages

    async def _refuse(self, scope: Any, receive: Any, send: Any) -> None:
        detail = f"larger than the limit of {self.limit} bytes (F8A_JOBS_MAX_BODY_BYTES)"
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
