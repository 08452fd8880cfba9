"""Every knob of the service, read once from ``F8A_JOBS_*`` environment variables.

A malformed value stops the service with the variable's name and the values it accepts; a
boolean is never read as false just because it is not a known word for true.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from f8a_jobs.core.alert_report import parse_smtp_url
from f8a_jobs.core.alerts import parse_targets
from f8a_jobs.core.errors import ConfigurationError, InvalidInput

N = TypeVar("N", int, float)
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # f8a_jobs/
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ROLES = ("all", "api", "scheduler")
DISPATCHERS = ("embedded", "celery", "selinon")


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
    role: str = "all"
    paused: bool = False
    filter_timeout: float = 30.0
    broker_url: str | None = None
    broker_queue: str = "celery"
    handler_modules: tuple[str, ...] = ()
    image_queues: tuple[tuple[str, str], ...] = ()  # a task's metadata Image → its worker queue
    api_tokens: tuple[str, ...] = ()
    users_file: Path | None = None  # YAML: users, their groups, admin flags, token hashes
    jwt_public_key: str | None = None  # PEM (or a file holding it): JWTs signed by its key
    jwt_jwks_url: str | None = None  # or the keys an OIDC provider publishes
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_groups_claim: str = "groups"
    admin_groups: tuple[str, ...] = ()  # members of these groups are admins
    system_owner: str = "system"  # owns default jobs that name no owner
    allow_anonymous: bool = False
    executor_threads: int = 20
    api_pool_size: int = 10
    misfire_grace_time: int = 3600
    leader_poll_interval: float = 2.0
    run_lease: float = 20.0
    shutdown_timeout: float = 25.0
    result_max_bytes: int = 65536
    run_retention_days: float = 30.0
    run_keep_last: int = 100
    max_concurrent: int = 15  # a workflow's tasks running at once, unless the job says
    workflow_max_tasks: int = 10_000  # tasks of a workflow after jobs inside it are inlined
    for_each_max_parts: int = 100_000
    backfill_max_runs: int = 10_000
    log_level: str = "INFO"
    log_format: str = "text"  # or json: one object a line
    metrics_token: str | None = None  # a bearer token GET /metrics asks for, if set
    executor: str = "threads"  # or celery: handlers run on `f8a-jobs worker` processes
    task_queue: str = "f8a-jobs"  # the broker queue of remote runs and tries, unless they say
    remote_in_flight: int = 1000  # remote runs and tries sent and not ended, at most
    remote_resend_after: float = 60.0  # a message no worker took by then is sent again
    max_body_bytes: int = 2 * 1024 * 1024  # a larger request body is refused (413) unread
    max_apply_body_bytes: int = 32 * 1024 * 1024  # POST /jobs/apply's: 100,000 jobs fit
    flow_dispatcher: str | None = None  # embedded | celery | selinon; None: by broker_url
    selinon_config: Path | None = None  # the worker fleet's Selinon configuration folder
    log_max_bytes: int = 1024 * 1024  # a try's captured log: past it, the head and the tail
    log_buffer_bytes: int = 64 * 1024 * 1024  # captured lines held while the database is away
    log_flush_interval: float = 1.0  # captured lines are written at least this often
    log_followers: int = 4  # ?follow=true streams at once per API process (each holds a thread)
    smtp_url: str | None = None  # smtp:// or smtps://[user:password@]host[:port][?from=addr]
    webhook_secret: str | None = None  # keys the HMAC in X-F8A-Jobs-Signature
    alerts_default: tuple[dict[str, Any], ...] = ()  # targets of jobs that name none
    alert_retry_for: float = 86400.0  # an alert not delivered by then is recorded failed
    alert_backoff: float = 5.0  # the first retry's wait; each next one waits twice as long
    public_url: str | None = None  # the service as users reach it: alerts link to runs

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the environment; a malformed value names its variable."""
        source: Mapping[str, str] = os.environ if env is None else env
        env = source
        get = source.get

        def number(name: str, default: N, kind: Callable[[str], N]) -> N:
            return _number(source, f"F8A_JOBS_{name}", default, kind)

        paused_name = "F8A_JOBS_PAUSED" if "F8A_JOBS_PAUSED" in env else "JOB_SERVICE_PAUSED"
        return cls(
            database_url=get("F8A_JOBS_DATABASE_URL", cls.database_url),
            filter_database_url=get("F8A_JOBS_FILTER_DATABASE_URL") or None,
            filter_tables=_csv(get("F8A_JOBS_FILTER_TABLES")) or None,
            default_jobs_dir=Path(get("F8A_JOBS_DEFAULT_JOBS_DIR") or cls.default_jobs_dir),
            host=get("F8A_JOBS_HOST", cls.host),
            port=number("PORT", cls.port, int),
            workers=number("WORKERS", cls.workers, int),
            role=_choice(env, "F8A_JOBS_ROLE", cls.role, ROLES),
            paused=_boolean(env, paused_name, False),
            filter_timeout=number("FILTER_TIMEOUT", cls.filter_timeout, float),
            broker_url=get("F8A_JOBS_BROKER_URL") or None,
            broker_queue=get("F8A_JOBS_BROKER_QUEUE") or cls.broker_queue,
            handler_modules=_csv(get("F8A_JOBS_HANDLER_MODULES")),
            image_queues=_pairs(get("F8A_JOBS_IMAGE_QUEUES"), "F8A_JOBS_IMAGE_QUEUES"),
            api_tokens=_csv(get("F8A_JOBS_API_TOKENS")),
            **_identities(source),
            allow_anonymous=_boolean(env, "F8A_JOBS_ALLOW_ANONYMOUS", False),
            executor_threads=number("EXECUTOR_THREADS", cls.executor_threads, int),
            api_pool_size=number("API_POOL_SIZE", cls.api_pool_size, int),
            misfire_grace_time=number("MISFIRE_GRACE_TIME", cls.misfire_grace_time, int),
            leader_poll_interval=number("LEADER_POLL_INTERVAL", cls.leader_poll_interval, float),
            run_lease=number("RUN_LEASE", cls.run_lease, float),
            shutdown_timeout=number("SHUTDOWN_TIMEOUT", cls.shutdown_timeout, float),
            result_max_bytes=number("RESULT_MAX_BYTES", cls.result_max_bytes, int),
            run_retention_days=number("RUN_RETENTION", cls.run_retention_days, float),
            run_keep_last=number("RUN_KEEP_LAST", cls.run_keep_last, int),
            max_concurrent=number("MAX_CONCURRENT", cls.max_concurrent, int),
            workflow_max_tasks=number("WORKFLOW_MAX_TASKS", cls.workflow_max_tasks, int),
            for_each_max_parts=number("FOR_EACH_MAX_PARTS", cls.for_each_max_parts, int),
            backfill_max_runs=number("BACKFILL_MAX_RUNS", cls.backfill_max_runs, int),
            log_level=_choice(env, "F8A_JOBS_LOG_LEVEL", cls.log_level, LOG_LEVELS, str.upper),
            log_format=_choice(env, "F8A_JOBS_LOG_FORMAT", cls.log_format, ("text", "json")),
            metrics_token=get("F8A_JOBS_METRICS_TOKEN") or None,
            executor=_choice(env, "F8A_JOBS_EXECUTOR", cls.executor, ("threads", "celery")),
            task_queue=get("F8A_JOBS_TASK_QUEUE") or cls.task_queue,
            remote_in_flight=number("REMOTE_IN_FLIGHT", cls.remote_in_flight, int),
            remote_resend_after=number("REMOTE_RESEND_AFTER", cls.remote_resend_after, float),
            max_body_bytes=number("MAX_BODY_BYTES", cls.max_body_bytes, int),
            max_apply_body_bytes=number("MAX_APPLY_BODY_BYTES", cls.max_apply_body_bytes, int),
            flow_dispatcher=_choice(env, "F8A_JOBS_FLOW_DISPATCHER", "", DISPATCHERS) or None,
            selinon_config=_path(get("F8A_JOBS_SELINON_CONFIG")),
            log_max_bytes=number("LOG_MAX_BYTES", cls.log_max_bytes, int),
            log_buffer_bytes=number("LOG_BUFFER_BYTES", cls.log_buffer_bytes, int),
            log_flush_interval=number("LOG_FLUSH_INTERVAL", cls.log_flush_interval, float),
            log_followers=number("LOG_FOLLOWERS", cls.log_followers, int),
            **_alerting(source),
        )

    def __post_init__(self) -> None:
        if self.executor == "celery" and not self.broker_url:
            raise ConfigurationError(
                "F8A_JOBS_EXECUTOR=celery sends runs through a broker: set F8A_JOBS_BROKER_URL"
            )
        if self.flow_dispatcher in ("celery", "selinon") and not self.broker_url:
            raise ConfigurationError(
                f"F8A_JOBS_FLOW_DISPATCHER={self.flow_dispatcher} sends flows through a broker: "
                "set F8A_JOBS_BROKER_URL"
            )
        if self.jwt_public_key and self.jwt_jwks_url:
            raise ConfigurationError(
                "set one of F8A_JOBS_JWT_PUBLIC_KEY and F8A_JOBS_JWT_JWKS_URL, not both"
            )
        if self.jwt_configured and not (self.jwt_issuer and self.jwt_audience):
            raise ConfigurationError(
                "JWTs are checked against their issuer and audience: set F8A_JOBS_JWT_ISSUER "
                "and F8A_JOBS_JWT_AUDIENCE"
            )
        if self.smtp_url:
            parse_smtp_url(self.smtp_url)  # a malformed one stops the service, named
        if self.flow_dispatcher == "selinon" and self.selinon_config is None:
            raise ConfigurationError(
                "F8A_JOBS_FLOW_DISPATCHER=selinon needs the workers' Selinon configuration: set "
                "F8A_JOBS_SELINON_CONFIG to its folder (nodes.yml and flows/*.yml)"
            )

    @property
    def jwt_configured(self) -> bool:
        return bool(self.jwt_public_key or self.jwt_jwks_url)

    @property
    def identities(self) -> bool:
        """Whether requests must say who makes them (a token); else all callers are admins."""
        return bool(self.api_tokens or self.users_file or self.jwt_configured)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values the service itself keeps secret: its tokens and the passwords in its
        URLs (captured logs and stored errors show them as ``***``)."""
        urls = (self.database_url, self.filter_database_url, self.broker_url, self.smtp_url)
        passwords = tuple(password for url in urls if (password := url_password(url)))
        keys = (self.metrics_token, self.webhook_secret)
        tokens = (*self.api_tokens, *(key for key in keys if key))
        return tokens + passwords

    @property
    def graceful_timeout(self) -> int:
        """gunicorn's limit for a worker to stop: the hand-over's, plus time to exit."""
        return int(self.shutdown_timeout) + 5


def url_password(url: str | None) -> str | None:
    """The password in ``scheme://user:password@host/…``, decoded, if there is one."""
    if not url:
        return None
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _pairs(value: str | None, name: str) -> tuple[tuple[str, str], ...]:
    """``key=value,key=value`` (``F8A_JOBS_IMAGE_QUEUES``: ``my-image:1=gpu,other=celery``)."""
    pairs = []
    for part in _csv(value):
        key, equals, item = part.partition("=")
        if not equals or not key.strip() or not item.strip():
            raise ConfigurationError(f"{name}: {part!r} is not image=queue")
        pairs.append((key.strip(), item.strip()))
    return tuple(pairs)


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
    if not 0 < value < float("inf"):  # nan fails both
        raise ConfigurationError(f"{name}={raw!r} must be a positive, finite number")
    return value


def _boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    word = raw.strip().lower()
    if word in TRUE or word in FALSE:
        return word in TRUE
    raise ConfigurationError(
        f"{name}={raw!r} is not a boolean; use one of {', '.join(TRUE)} or {', '.join(FALSE)}"
    )


def _identities(env: Mapping[str, str]) -> dict[str, Any]:
    """Where users, their groups and their tokens come from (``api/auth.py``)."""
    return {
        "users_file": _path(env.get("F8A_JOBS_USERS_FILE")),
        "jwt_public_key": env.get("F8A_JOBS_JWT_PUBLIC_KEY") or None,
        "jwt_jwks_url": env.get("F8A_JOBS_JWT_JWKS_URL") or None,
        "jwt_issuer": env.get("F8A_JOBS_JWT_ISSUER") or None,
        "jwt_audience": env.get("F8A_JOBS_JWT_AUDIENCE") or None,
        "jwt_groups_claim": env.get("F8A_JOBS_JWT_GROUPS_CLAIM") or Settings.jwt_groups_claim,
        "admin_groups": _csv(env.get("F8A_JOBS_ADMIN_GROUPS")),
        "system_owner": env.get("F8A_JOBS_SYSTEM_OWNER") or Settings.system_owner,
    }


def _alerting(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        "smtp_url": env.get("F8A_JOBS_SMTP_URL") or None,
        "webhook_secret": env.get("F8A_JOBS_WEBHOOK_SECRET") or None,
        "alerts_default": _alert_targets(env.get("F8A_JOBS_ALERTS_DEFAULT")),
        "alert_retry_for": _number(
            env, "F8A_JOBS_ALERT_RETRY_FOR", Settings.alert_retry_for, float
        ),
        "alert_backoff": _number(env, "F8A_JOBS_ALERT_BACKOFF", Settings.alert_backoff, float),
        "public_url": (env.get("F8A_JOBS_PUBLIC_URL") or "").rstrip("/") or None,
    }


def _alert_targets(value: str | None) -> tuple[dict[str, Any], ...]:
    """``F8A_JOBS_ALERTS_DEFAULT``: JSON targets as a job's ``alerts`` takes them, or
    comma-separated email addresses (alerted on failures)."""
    if not value or not value.strip():
        return ()
    try:
        data = json.loads(value) if value.lstrip().startswith("[") else None
        if data is None:
            data = [{"email": address.strip()} for address in value.split(",") if address.strip()]
        return tuple(parse_targets(data, "F8A_JOBS_ALERTS_DEFAULT") or ())
    except (ValueError, InvalidInput) as error:
        raise ConfigurationError(f"F8A_JOBS_ALERTS_DEFAULT: {error}") from error


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _choice(
    env: Mapping[str, str],
    name: str,
    default: str,
    choices: tuple[str, ...],
    normalise: Callable[[str], str] = str.lower,
) -> str:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = normalise(raw.strip())
    if value not in choices:
        raise ConfigurationError(f"{name}={raw!r} is not one of {', '.join(choices)}")
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
