"""JWTs from an OIDC provider, checked with PyJWT: the signature (a PEM public key, or the
provider's JWKS, fetched and cached by key id), expiry, issuer and audience; the user is
``sub``, the groups the claim ``F8A_JOBS_JWT_GROUPS_CLAIM`` names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt

from f8a_jobs.core.access import Caller
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


class TokenRefused(Exception):
    """A JWT that does not pass; the message says why, for the 401."""


class JwtVerifier:
    def __init__(self, settings: Settings) -> None:
        self.issuer, self.audience = settings.jwt_issuer, settings.jwt_audience
        self.groups_claim, self.admin_groups = settings.jwt_groups_claim, settings.admin_groups
        self.key = _pem(settings.jwt_public_key) if settings.jwt_public_key else None
        self.jwks = (
            jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, lifespan=300, timeout=10)
            if settings.jwt_jwks_url
            else None
        )

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
        if not isinstance(user, str) or not user:
            raise TokenRefused("the token's 'sub' claim is not a user name")
        return Caller(user, groups, any(group in self.admin_groups for group in groups))

    def _claims(self, token: str) -> dict[str, Any]:
        key: Any = self.key
        if self.jwks is not None:
            key = self.jwks.get_signing_key_from_jwt(token).key
        return jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            audience=self.audience,
            issuer=self.issuer,
            options={"require": ["sub", "exp", "iss", "aud"]},
        )


def _pem(value: str) -> str:
    """The key itself, or the file holding it."""
    return value if value.lstrip().startswith("-----BEGIN") else Path(value).read_text()


def _groups(value: Any) -> tuple[str, ...]:
    """A list of names, or one text of names separated by spaces or commas."""
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list):
        return ()
    return tuple(dict.fromkeys(str(item) for item in value if isinstance(item, str | int)))


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2
