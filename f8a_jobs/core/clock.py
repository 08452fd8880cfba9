"""The service's clock: aware UTC datetimes, and how the API shows them."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """A time as the API shows it (ISO 8601), or None."""
    return moment.isoformat() if moment else None
