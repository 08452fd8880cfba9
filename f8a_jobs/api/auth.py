"""Who makes a request. A bearer token is, in this order, one of ``F8A_JOBS_API_TOKENS``
(an admin), a token of the users file (``users_file``), or a JWT (``jwt_tokens``). With none
of them configured no operation asks for a token and every caller is an admin (the server
then listens on loopback only, unless ``F8A_JOBS_ALLOW_ANONYMOUS``)."""

from __future__ import annotations

import asyncio
import hmac
import logging
from datetime import datetime
from typing import Any, cast

from connexion import context
from connexion.exceptions import OAuthProblem

from f8a_jobs.api.context import engine
from f8a_jobs.api.jwt_tokens import JwtVerifier, TokenRefused, looks_like_jwt
from f8a_jobs.api.users_file import UsersFile
from f8a_jobs.core.access import ANONYMOUS, READ, WRITE, Actor, Caller
from f8a_jobs.core.errors import InvalidInput, Unauthenticated
from f8a_jobs.core.settings import Settings
from f8a_jobs.services import access
from f8a_jobs.services.audit import parse_reason

log = logging.getLogger(__name__)


class Identities:
    """The identity sources the settings configure."""

    def __init__(self, settings: Settings) -> None:
        self.required = settings.identities
        self.api_tokens = tuple(token.encode() for token in settings.api_tokens)
        reserved = frozenset(
            {settings.system_owner, ANONYMOUS.user}
            | {f"token-{n + 1}" for n in range(len(settings.api_tokens))}
        )
        self.users = (
            UsersFile(settings.users_file, settings.admin_groups, reserved)
            if settings.users_file
            else None
        )
        self.jwt = JwtVerifier(settings) if settings.jwt_configured else None

    def caller(self, token: str) -> Caller:
        """The caller holding ``token``; ``TokenRefused`` saying why not."""
        given = token.encode()
        matches = [hmac.compare_digest(given, known) for known in self.api_tokens]
        if any(matches):
            return Caller(f"token-{matches.index(True) + 1}", (), admin=True)
        found = self.users.lookup(token) if self.users else None
        if found is not None:
            return found
        if self.jwt is not None and looks_like_jwt(token):
            return self.jwt.verify(token)
        raise TokenRefused("the token is not known")

    def check_group(self, group: Any) -> None:
        """A job's group is one the users file knows, when it is the only source of groups
        (a JWT may bring any group, so with JWTs any name goes)."""
        if self.users is None or self.jwt is not None or not isinstance(group, str):
            return
        if group not in self.users.groups():
            raise InvalidInput(
                "group", f"unknown group {group!r}: the users file has no such group"
            )

    @property
    def problem(self) -> str | None:
        """Why the users file in force is not the file on disk, if it is not."""
        if self.users is None:
            return None
        self.users.refresh()
        return self.users.problem


_identities: Identities | None = None


def install(identities: Identities) -> None:
    global _identities
    _identities = identities


def identities() -> Identities:
    if _identities is None:
        raise RuntimeError("create_app() has not run in this process")
    return _identities


async def check_token(token: str) -> dict[str, Any]:
    """Connexion's bearer check: the caller as ``token_info``, or a 401 saying why not. A JWT
    is checked in a thread: fetching the provider's keys must not hold the event loop."""
    known = identities()
    try:
        if known.jwt is not None and looks_like_jwt(token):
            caller = await asyncio.to_thread(known.caller, token)
        else:
            caller = known.caller(token)
    except TokenRefused as refused:
        raise OAuthProblem(detail=str(refused)) from None
    return {"sub": caller.user, "groups": list(caller.groups), "admin": caller.admin}


def caller() -> Caller:
    """Who makes the request being served (an admin when no identities are configured)."""
    info = context.context.get("token_info")
    if not info:
        if identities().required:  # an operation the spec leaves open asked who calls
            raise Unauthenticated("a bearer token is needed")
        return ANONYMOUS
    return Caller(info["sub"], tuple(info["groups"]), bool(info["admin"]))


def readable(job_id: str) -> datetime:
    """When the job was created; a 404 unless the caller may read it (as if it did not
    exist)."""
    with engine().connect() as connection:
        job = access.check(connection, caller(), job_id, READ)
    return cast(datetime, job["created_at"])


def writable(job_id: str) -> None:
    """A 404 unless the caller may read the job, a 403 unless they may also change it."""
    who = caller()
    if not who.admin:
        with engine().connect() as connection:
            access.check(connection, who, job_id, WRITE)


def actor(reason: Any = None) -> Actor:
    """The caller, with the reason they give for a change (``?reason=`` or a body field)."""
    return Actor(caller(), parse_reason(reason))


def secure(spec: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The spec as served: without identities configured, no operation asks for a token."""
    if settings.identities:
        return spec
    log.warning(
        "no F8A_JOBS_API_TOKENS, users file or JWT keys: anyone who can reach the API is an admin"
    )
    return {key: value for key, value in spec.items() if key != "security"}
