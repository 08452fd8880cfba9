"""``f8a-jobs serve [--role all|api|scheduler] | worker [--queues] [--concurrency] | migrate |
initjobs | delete-job | hash-token | demo``; and, through the Python client, ``f8a-jobs jobs …``
and ``f8a-jobs runs …`` (``f8a-jobs jobs --help``)."""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import logging
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from f8a_jobs.core import logs
from f8a_jobs.core.errors import ConfigurationError, F8aJobsError
from f8a_jobs.core.names import NAME_RULE
from f8a_jobs.core.settings import ROLES, Settings, get_settings, use_settings
from f8a_jobs.execution import metrics
from f8a_jobs.execution.server_mark import ServerMark
from f8a_jobs.services import service_state
from f8a_jobs.services.flows.dispatchers import check_flows_against, make_dispatcher
from f8a_jobs.services.jobs import delete_job, unreachable_job_ids
from f8a_jobs.services.jobs.defaults import load_default_jobs
from f8a_jobs.storage import demo
from f8a_jobs.storage.db import get_engine
from f8a_jobs.storage.migrate import migrate

log = logging.getLogger("f8a_jobs")


CLIENT_COMMANDS = ("jobs", "runs", "apply")  # the client's (f8a_jobs/client/commands.py)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if _command_of(argv) in CLIENT_COMMANDS:
        from f8a_jobs.client.commands import main as client_main

        return client_main(argv)
    args = _parser().parse_args(argv)
    try:
        settings = get_settings()
        logging.getLogger("apscheduler").setLevel(logging.WARNING)  # else one INFO line per job
        logs.configure(settings.log_level, settings.log_format)
        return int(args.command(args, settings) or 0)
    except ConfigurationError as exc:
        print(f"f8a-jobs: {exc.detail}", file=sys.stderr)
        return 2


def _command_of(argv: list[str]) -> str | None:
    """The command word, after the client's options (``--url U``, ``--token T``, ``--json``)."""
    words = iter(argv)
    for word in words:
        if word in ("--url", "--token"):
            next(words, None)
        elif not word.startswith("--"):
            return word
    return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="f8a-jobs", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="migrate, load default jobs, serve the API and fire jobs"
    )
    serve.add_argument("--host", help="listen address (F8A_JOBS_HOST)")
    serve.add_argument("--port", type=int, help="listen port (F8A_JOBS_PORT)")
    serve.add_argument("--workers", type=int, help="gunicorn worker processes (F8A_JOBS_WORKERS)")
    serve.add_argument(
        "--role",
        choices=ROLES,
        help="all: API and firing; api: API only; scheduler: firing and probes (F8A_JOBS_ROLE)",
    )
    serve.set_defaults(command=serve_command)
    worker = commands.add_parser(
        "worker", help="run handlers and workflow tasks sent by F8A_JOBS_EXECUTOR=celery"
    )
    worker.add_argument(
        "--queues", help="comma-separated broker queues to consume (default F8A_JOBS_TASK_QUEUE)"
    )
    worker.add_argument("--concurrency", type=int, help="processes (default: one per CPU)")
    worker.add_argument(
        "--pool", choices=("prefork", "threads", "solo"), default="prefork", help="Celery's pool"
    )
    worker.set_defaults(command=worker_command)
    commands.add_parser("migrate", help="bring the database schema up to date").set_defaults(
        command=migrate_command
    )
    initjobs = commands.add_parser("initjobs", help="load the default jobs (YAML files)")
    initjobs.add_argument(
        "--dir", type=Path, help="directory of job files (F8A_JOBS_DEFAULT_JOBS_DIR)"
    )
    initjobs.add_argument("--strict", action="store_true", help="exit non-zero when a file is bad")
    initjobs.set_defaults(command=initjobs_command)
    delete = commands.add_parser(
        "delete-job", help="delete a job and its runs, even one whose id no URL can reach"
    )
    delete.add_argument("job_id", help="the job's id, exactly as stored")
    delete.set_defaults(command=delete_job_command)
    hash_token = commands.add_parser(
        "hash-token", help="print a token's SHA-256 digest, as the users file keeps it"
    )
    hash_token.add_argument(
        "token", nargs="?", help="the token (default: read from standard input, unechoed)"
    )
    hash_token.set_defaults(command=hash_token_command)
    commands.add_parser(
        "demo", help="create the fabric8-analytics demo tables $filter's examples read"
    ).set_defaults(command=demo_command)
    return parser


def migrate_command(_args: argparse.Namespace, settings: Settings) -> int:
    migrate(get_engine(settings.database_url))
    print(
        f"schema up to date on {get_engine(settings.database_url).url.render_as_string(hide_password=True)}"
    )
    return 0


def initjobs_command(args: argparse.Namespace, settings: Settings) -> int:
    directory = args.dir or settings.default_jobs_dir
    if not directory.is_dir():
        print(f"f8a-jobs: {directory}: no such directory", file=sys.stderr)
        return 2
    engine = get_engine(settings.database_url)
    migrate(engine)
    check_flows_against(settings)
    report = load_default_jobs(engine, directory)
    print(report.summary())
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if args.strict and report.errors else 0


def hash_token_command(args: argparse.Namespace, _settings: Settings) -> int:
    """The digest for a users file's ``tokens``; read from stdin, the token stays out of the
    shell's history and the process list."""
    from f8a_jobs.api.users_file import token_digest

    token = args.token
    if token is None:
        token = getpass.getpass("token: ") if sys.stdin.isatty() else sys.stdin.readline()
    token = token.rstrip("\r\n")
    if not token:
        print("f8a-jobs: no token given", file=sys.stderr)
        return 2
    print(token_digest(token))
    return 0


def delete_job_command(args: argparse.Namespace, settings: Settings) -> int:
    """The way out for a job the API cannot address (an id with '/', from before ids were
    checked): the API's delete, with the same refusals (a job others use stays)."""
    engine = get_engine(settings.database_url)
    migrate(engine)
    try:
        delete_job(engine, args.job_id)
    except F8aJobsError as exc:
        print(f"f8a-jobs: {exc.detail}", file=sys.stderr)
        return 1
    print(f"deleted job {args.job_id!r} and its runs")
    return 0


def _warn_unreachable(engine: Engine) -> None:
    for job_id in unreachable_job_ids(engine):
        log.warning(
            "job %r cannot be read, changed or deleted over the API (%s); delete it with: "
            "f8a-jobs delete-job %s",
            job_id,
            NAME_RULE,
            shlex.quote(job_id),
        )


def demo_command(_args: argparse.Namespace, settings: Settings) -> int:
    """Into the database ``$filter`` reads; refuses (exit 2) where the tables hold other data."""
    engine = get_engine(settings.filter_database_url or settings.database_url)
    where = engine.url.render_as_string(hide_password=True)
    loaded = demo.load(engine)
    print(f"demo tables {'loaded into' if loaded else 'already in'} {where}")
    return 0


def serve_command(args: argparse.Namespace, settings: Settings) -> int:
    given = {"host": args.host, "port": args.port, "workers": args.workers, "role": args.role}
    settings = Settings(**{**settings.__dict__, **{k: v for k, v in given.items() if v}})
    use_settings(settings)
    refuse_anonymous_exposure(settings)
    make_dispatcher(settings).close()  # a broker URL Celery cannot use stops us here
    engine = get_engine(settings.database_url)
    migrate(engine)
    if settings.paused:
        service_state.set_state(engine, "paused")
    check_flows_against(settings)
    load_default_jobs(engine, settings.default_jobs_dir)
    _warn_unreachable(engine)
    engine.dispose()  # workers are forked: each opens its own connections
    _metrics_directory()
    _gunicorn(settings).run()
    return 0


def worker_command(args: argparse.Namespace, settings: Settings) -> int:
    """A Celery worker for the runs and tries the leader sends (``executors/worker.py``)."""
    from f8a_jobs.execution.executors.worker import worker_app

    if not settings.broker_url:
        raise ConfigurationError(
            "f8a-jobs worker takes runs from a broker: set F8A_JOBS_BROKER_URL"
        )
    migrate(get_engine(settings.database_url))  # a worker ahead of the schema fails loudly here
    get_engine(settings.database_url).dispose()  # each process opens its own connections
    argv = ["worker", "--queues", args.queues or settings.task_queue, "--pool", args.pool]
    argv += ["--loglevel", settings.log_level, "--without-gossip", "--without-mingle"]
    argv += ["--hostname", f"f8a-jobs-{os.getpid()}@%h"]  # unique: remote control queues
    if args.concurrency:
        argv += ["--concurrency", str(args.concurrency)]
    worker_app(settings).worker_main(argv)
    return 0


def _metrics_directory() -> None:
    """Gunicorn's workers count metrics into files in one directory, summed at scrape time;
    files of an earlier start would count twice: the directory starts empty."""
    directory = os.environ.get(metrics.MULTIPROCESS_DIR)
    if directory:
        for stale in Path(directory).glob("*.db"):
            stale.unlink()
    else:
        os.environ[metrics.MULTIPROCESS_DIR] = tempfile.mkdtemp(prefix="f8a-jobs-metrics-")


def refuse_anonymous_exposure(settings: Settings) -> None:
    """Secure by default: an API reachable from other machines needs tokens, or consent."""
    if settings.identities or settings.allow_anonymous or is_loopback(settings.host):
        return
    raise ConfigurationError(
        f"F8A_JOBS_HOST={settings.host!r} is reachable from other machines and "
        "F8A_JOBS_API_TOKENS is not set (nor F8A_JOBS_USERS_FILE or F8A_JOBS_JWT_*): set "
        "tokens, or F8A_JOBS_ALLOW_ANONYMOUS=true to let anyone who reaches it use the API"
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _gunicorn(settings: Settings) -> Any:
    from gunicorn.app.base import BaseApplication

    engine_is_sqlite = get_engine(settings.database_url).dialect.name == "sqlite"
    mark = ServerMark()  # made before the workers fork: they share it

    def worker_gone(_server: Any, worker: Any) -> None:
        """A worker's live gauges stop counting when it is gone, and it leads no more."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
        mark.gone(worker.pid)

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{settings.host}:{settings.port}")
            self.cfg.set("workers", _workers(settings, engine_is_sqlite))
            self.cfg.set("worker_class", "uvicorn_worker.UvicornWorker")
            # A worker that leads hands over within F8A_JOBS_SHUTDOWN_TIMEOUT; gunicorn waits
            # a little longer before it kills the worker (see docs/operations.md, "Stopping").
            self.cfg.set("graceful_timeout", settings.graceful_timeout)
            self.cfg.set("loglevel", settings.log_level.lower())
            self.cfg.set("child_exit", worker_gone)

        def load(self) -> Any:
            from f8a_jobs.api import create_app

            return create_app(settings, mark)

    return Server()


def _workers(settings: Settings, engine_is_sqlite: bool) -> int:
    if settings.role == "scheduler":
        return 1  # one process contends for the lock; more would only stand by
    return settings.workers or (1 if engine_is_sqlite else 2)


if __name__ == "__main__":
    sys.exit(main())
