"""The ``Allow`` header of a 405: every method the spec gives the path.

Connexion routes each operation separately, so a method a path lacks is answered by the first
operation of that path, whose ``Allow`` names only its own method (``GET, HEAD`` for ``/jobs``,
which takes ``POST`` too). RFC 9110 asks for the methods the resource supports.
"""

from __future__ import annotations

import re
from typing import Any

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PARAMETER = re.compile(r"(\{[^}/]+\})")  # a path template's {name}


def allowed_methods(spec: dict[str, Any], base: str) -> list[tuple[re.Pattern[str], str]]:
    """One (path pattern, ``Allow`` value) per path of the spec, under ``base``; literal paths
    first (``/jobs/flow-scheduling`` before ``/jobs/{job_id}``)."""
    table = []
    for path, item in spec["paths"].items():
        methods = [method.upper() for method in METHODS if method in item]
        if "GET" in methods and "HEAD" not in methods:
            methods.append("HEAD")  # answered as GET is
        parts = PARAMETER.split(base + path)
        pattern = "".join(
            "[^/]+" if PARAMETER.fullmatch(part) else re.escape(part) for part in parts
        )
        table.append((path.count("{"), re.compile(pattern), ", ".join(methods)))
    return [(pattern, allow) for _, pattern, allow in sorted(table, key=lambda row: row[0])]


class AllowHeader:
    """ASGI middleware: a 405's ``Allow`` lists every method of the path in the spec."""

    def __init__(self, app: Any, table: list[tuple[re.Pattern[str], str]]) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_allow(message: Any) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                allow = self._allow(scope["path"])
                if allow:
                    headers = [(k, v) for k, v in message["headers"] if k.lower() != b"allow"]
                    message = {**message, "headers": [*headers, (b"allow", allow.encode())]}
            await send(message)

        await self.app(scope, receive, send_allow)

    def _allow(self, path: str) -> str | None:
        for pattern, allow in self.table:
            if pattern.fullmatch(path):
                return allow
        return None
