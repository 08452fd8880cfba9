"""JWTs from an OIDC provider, checked with PyJWT: the signature (a PEM public key, or the
provider's JWKS, fetched and cached by key id), expiry, issuer and audience; the user is
``sub``, the groups the claim ``F8A_JOBS_JWT_GROUPS_CLAIM`` names."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import jwt

from f8a_jobs.core.access import Caller, parse_name
from f8a_jobs.core.errors import InvalidInput
from f8a_jobs.core.settings import Settings

# Asymmetric algorithms only: a shared secret (HS*) or "none" is never accepted.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
REASONS = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.InvalidAudienceError, "the token is for another audience"),
    (jwt.InvalidIssuerError, "the token comes from another issuer"),
    (jwt.InvalidAlgorithmError, "the token's algorithm is not accepted"),
    (jwt.PyJWKClientConnectionError, "the provider's keys (JWKS) cannot be fetched"),
    (jwt.PyJWKClientError, "no key of the provider signed the token"),
    (jwt.DecodeError, "the token is not a well-formed JWT"),
)


REFETCH_AT_MOST_EVERY = 60.0  # seconds: an unknown key id fetches the provider's keys again
RESERVED = re.compile(r"token-\d+|anonymous")  # names the service gives its own callers


class TokenRefused(Exception):
    """A JWT that does not pass; the message says why, for the 401."""


class JwtVerifier:
    def __init__(self, settings: Settings) -> None:
        self.issuer, self.audience = settings.jwt_issuer, settings.jwt_audience
        self.groups_claim, self.admin_groups = settings.jwt_groups_claim, settings.admin_groups
        self.key = _pem(settings.jwt_public_key) if settings.jwt_public_key else None
        self.jwks = (
            jwt.PyJWKClient(settings.jwt_jwks_url, lifespan=300, timeout=10)
            if settings.jwt_jwks_url
            else None
        )
        self.system_owner = settings.system_owner
        self._fetched_at = -REFETCH_AT_MOST_EVERY
        self._lock = threading.Lock()

    def verify(self, token: str) -> Caller:
        try:
            claims = self._claims(token)
        except jwt.MissingRequiredClaimError as error:
            raise TokenRefused(f"the token has no {error.claim!r} claim") from None
        except (jwt.PyJWTError, ValueError) as error:
            reason = next((text for kind, text in REASONS if isinstance(error, kind)), None)
            raise TokenRefused(reason or f"the token is refused: {error}") from None
        groups = _groups(claims.get(self.groups_claim))
        user = claims["sub"]
        if not _is_name(user) or RESERVED.fullmatch(user) or user == self.system_owner:
            raise TokenRefused("the token's 'sub' claim is not a user name this service accepts")
        return Caller(user, groups, any(group in self.admin_groups for group in groups))

    def _claims(self, token: str) -> dict[str, Any]:
        key: Any = self.key if self.jwks is None else self._provider_key(self.jwks, token)
        return jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            audience=self.audience,
            issuer=self.issuer,
            options={"require": ["sub", "exp", "iss", "aud"]},
        )

    def _provider_key(self, jwks: jwt.PyJWKClient, token: str) -> Any:
        """The provider's key the token names: from the cached key set, fetched again for an
        unknown key id at most once a ``REFETCH_AT_MOST_EVERY`` (random key ids from anybody
        must not make this service hammer the provider)."""
        kid = jwt.get_unverified_header(token).get("kid")
        keys = {key.key_id: key for key in jwks.get_signing_keys()}
        with self._lock:
            stale = time.monotonic() - self._fetched_at > REFETCH_AT_MOST_EVERY
            if kid not in keys and stale:
                self._fetched_at = time.monotonic()
                keys = {key.key_id: key for key in jwks.get_signing_keys(refresh=True)}
        if kid not in keys:
            raise TokenRefused("no key of the provider signed the token")
        return keys[kid].key


def _is_name(value: Any) -> bool:
    try:
        return parse_name(value, "sub") is not None
    except InvalidInput:
        return False


def _pem(value: str) -> str:
    """The key itself, or the file holding it."""
    return value if value.lstrip().startswith("-----BEGIN") else Path(value).read_text()


def _groups(value: Any) -> tuple[str, ...]:
    """A list of names, or one text of names separated by spaces or commas."""
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list):
        return ()
    names = (str(item) for item in value if isinstance(item, str | int))
    return tuple(dict.fromkeys(name for name in names if _is_name(name)))


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2
