"""Every knob of the service, read once from ``F8A_JOBS_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from f8a_jobs.errors import ConfigurationError

N = TypeVar("N", int, float)
PACKAGE_DIR = Path(__file__).resolve().parent


def bundled_path(name: str) -> Path:
    """A file shipped with the service: inside the wheel, or at the top of a checkout."""
    inside = PACKAGE_DIR / name
    return inside if inside.exists() else PACKAGE_DIR.parent / name


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///f8a_jobs.db"
    filter_database_url: str | None = None
    filter_tables: tuple[str, ...] | None = None
    default_jobs_dir: Path = bundled_path("default_jobs")
    host: str = "127.0.0.1"
    port: int = 34000
    workers: int = 0  # 0: one on SQLite (wake-ups stay in-process), two on PostgreSQL
    paused: bool = False
    filter_timeout: float = 30.0
    broker_url: str | None = None
    broker_queue: str = "celery"
    handler_modules: tuple[str, ...] = ()
    api_tokens: tuple[str, ...] = ()
    executor_threads: int = 20
    misfire_grace_time: int = 3600
    leader_poll_interval: float = 2.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the environment; a malformed value names its variable."""
        env = os.environ if env is None else env
        get = env.get
        paused = get("F8A_JOBS_PAUSED", get("JOB_SERVICE_PAUSED", ""))
        return cls(
            database_url=get("F8A_JOBS_DATABASE_URL", cls.database_url),
            filter_database_url=get("F8A_JOBS_FILTER_DATABASE_URL") or None,
            filter_tables=_csv(get("F8A_JOBS_FILTER_TABLES")) or None,
            default_jobs_dir=Path(get("F8A_JOBS_DEFAULT_JOBS_DIR") or cls.default_jobs_dir),
            host=get("F8A_JOBS_HOST", cls.host),
            port=_number(env, "F8A_JOBS_PORT", cls.port, int),
            workers=_number(env, "F8A_JOBS_WORKERS", cls.workers, int),
            paused=paused.strip().lower() in {"1", "true", "yes", "on"},
            filter_timeout=_number(env, "F8A_JOBS_FILTER_TIMEOUT", cls.filter_timeout, float),
            broker_url=get("F8A_JOBS_BROKER_URL") or None,
            broker_queue=get("F8A_JOBS_BROKER_QUEUE") or cls.broker_queue,
            handler_modules=_csv(get("F8A_JOBS_HANDLER_MODULES")),
            api_tokens=_csv(get("F8A_JOBS_API_TOKENS")),
            executor_threads=_number(env, "F8A_JOBS_EXECUTOR_THREADS", cls.executor_threads, int),
            misfire_grace_time=_number(
                env, "F8A_JOBS_MISFIRE_GRACE_TIME", cls.misfire_grace_time, int
            ),
            leader_poll_interval=_number(
                env, "F8A_JOBS_LEADER_POLL_INTERVAL", cls.leader_poll_interval, float
            ),
            log_level=get("F8A_JOBS_LOG_LEVEL", cls.log_level).upper(),
        )


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _number(env: Mapping[str, str], name: str, default: N, kind: Callable[[str], N]) -> N:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(
            f"{name}={raw!r} is not a valid {getattr(kind, '__name__', kind)}"
        ) from None
    if value <= 0:
        raise ConfigurationError(f"{name}={raw!r} must be positive")
    return value


_current: Settings | None = None


def get_settings() -> Settings:
    """The settings of this process, read from the environment on first use."""
    global _current
    if _current is None:
        _current = Settings.from_env()
    return _current


def use_settings(settings: Settings) -> None:
    """Make ``settings`` this process's settings (the CLI and tests call it once at start)."""
    global _current
    _current = settings
