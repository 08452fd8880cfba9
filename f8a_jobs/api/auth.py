"""Bearer tokens: with ``F8A_JOBS_API_TOKENS`` set, every operation but the probes needs one."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from f8a_jobs.core.settings import get_settings

log = logging.getLogger(__name__)


def check_token(token: str) -> dict[str, Any] | None:
    """Connexion's bearer check: compares with every configured token in constant time."""
    matches = [
        hmac.compare_digest(token.encode(), known.encode()) for known in get_settings().api_tokens
    ]
    return {"sub": f"token-{matches.index(True) + 1}"} if any(matches) else None


def secure(spec: dict[str, Any], tokens: tuple[str, ...]) -> dict[str, Any]:
    """The spec as served: without tokens configured, no operation asks for one."""
    if tokens:
        return spec
    log.warning("F8A_JOBS_API_TOKENS is not set: anyone who can reach the API can use it")
    return {key: value for key, value in spec.items() if key != "security"}
