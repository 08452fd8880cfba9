"""Fixtures: a fresh PostgreSQL database per test run, SQLite beside it, and real servers.

Every storage-touching test runs on both backends. Without a reachable PostgreSQL the run stops
at once with a message saying how to provide one: a skipped backend is not a passed one.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from f8a_jobs.core.settings import Settings, use_settings
from f8a_jobs.handlers import registry
from f8a_jobs.storage.db import build_engine
from f8a_jobs.storage.migrate import migrate
from f8a_jobs.storage.tables import metadata

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
HOW_TO = (
    "f8a-jobs tests need a PostgreSQL server they may create databases on. Start one "
    "(e.g. `docker run -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16`) or point "
    "F8A_JOBS_TEST_DATABASE_URL at one, e.g. "
    "F8A_JOBS_TEST_DATABASE_URL=postgresql+psycopg2://user:pass@host:5432/postgres make test"
)
BROKERS = {
    "redis": os.environ.get("F8A_JOBS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "rabbitmq": os.environ.get("F8A_JOBS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
}
BROKERS_HOW_TO = (
    "f8a-jobs tests send flows through Redis and RabbitMQ: start them (e.g. `docker run -p 6379:6379 "
    "redis:7`, `docker run -p 5672:5672 rabbitmq:3`) or point F8A_JOBS_TEST_REDIS_URL / "
    "F8A_JOBS_TEST_AMQP_URL at running ones; `redis-server` must be on the PATH too."
)
TEST_SETTINGS = {
    "F8A_JOBS_HANDLER_MODULES": "tests.handlers",
    "F8A_JOBS_LEADER_POLL_INTERVAL": "0.5",
}


def pytest_configure(config: pytest.Config) -> None:
    admin_url = os.environ.get("F8A_JOBS_TEST_DATABASE_URL", DEFAULT_ADMIN_URL)
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        pytest.exit(f"PostgreSQL unreachable at {admin_url}: {exc}\n{HOW_TO}", returncode=3)
    _require_brokers()
    if pg_bin() is None:
        pytest.exit(PG_BIN_HOW_TO, returncode=3)
    name = f"f8a_jobs_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    config.f8a_admin = admin  # type: ignore[attr-defined]
    config.f8a_pg_name = name  # type: ignore[attr-defined]
    config.f8a_pg_url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)  # type: ignore[attr-defined]
    os.environ.update(TEST_SETTINGS)
    use_settings(Settings.from_env())


PG_BIN_HOW_TO = (
    "f8a-jobs tests restart a PostgreSQL server of their own: they need its programs (initdb, "
    "pg_ctl): install PostgreSQL (`apt-get install postgresql`) or point F8A_JOBS_TEST_PG_BIN "
    "at the directory holding them."
)


def pg_bin() -> Path | None:
    """The directory of PostgreSQL's server programs (initdb, pg_ctl)."""
    given = os.environ.get("F8A_JOBS_TEST_PG_BIN")
    candidates = [Path(given)] if given else []
    if shutil.which("pg_ctl"):
        candidates.append(Path(shutil.which("pg_ctl")).parent)  # type: ignore[arg-type]
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return next((path for path in candidates if (path / "initdb").exists() and (path / "pg_ctl").exists()), None)


def _require_brokers() -> None:
    for name, url in BROKERS.items():
        parsed = urlsplit(url)
        try:
            socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), timeout=3).close()
        except OSError as exc:
            pytest.exit(f"{name} unreachable at {url}: {exc}\n{BROKERS_HOW_TO}", returncode=3)
    if shutil.which("redis-server") is None:
        pytest.exit(f"redis-server is not on the PATH\n{BROKERS_HOW_TO}", returncode=3)


def pytest_unconfigure(config: pytest.Config) -> None:
    admin = getattr(config, "f8a_admin", None)
    if admin is not None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{config.f8a_pg_name}" WITH (FORCE)'))  # type: ignore[attr-defined]
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url(pytestconfig: pytest.Config) -> str:
    return str(pytestconfig.f8a_pg_url)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = build_engine(pg_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def started_scheduler(engine: Engine) -> Iterator[Any]:
    """A running FiringScheduler of a fresh term, the test handlers' records cleared."""
    from f8a_jobs.core.clock import utcnow
    from f8a_jobs.core.settings import get_settings
    from f8a_jobs.execution.scheduler import FiringScheduler
    from f8a_jobs.storage import fencing
    from tests import handlers

    handlers.events.clear()
    handlers.marks.clear()
    handlers.Flaky.tries.clear()
    with engine.begin() as connection:
        epoch = fencing.begin_term(connection, "test", utcnow())
    firing = FiringScheduler(engine, get_settings(), epoch, "test-owner", lambda: None)
    firing.start(paused=False)
    yield firing
    firing.stop()


def wipe(engine: Engine) -> None:
    """Empty the service's tables, but the leadership term: a server of the same database
    may be leading, and a vanished term would fence it out."""
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            if table.name != "leadership":
                connection.execute(table.delete())


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, pytestconfig: pytest.Config) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return str(pytestconfig.f8a_pg_url)  # type: ignore[attr-defined]


@pytest.fixture
def engine(db_url: str, backend: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A migrated, empty database of the test's backend."""
    if backend == "postgresql":
        engine = request.getfixturevalue("pg_engine")
        wipe(engine)
        yield engine
        return
    engine = build_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    registry.handlers.cache_clear()
    yield
    registry.handlers.cache_clear()


def poll(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Return ``check()``'s first truthy value, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value: {value!r})")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A real ``f8a-jobs serve`` process."""

    def __init__(self, database_url: str, jobs_dir: Path, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/v1"
        self.database_url = database_url
        self.env = {
            **os.environ,
            **TEST_SETTINGS,
            "PYTHONPATH": str(ROOT),
            "F8A_JOBS_DATABASE_URL": database_url,
            "F8A_JOBS_DEFAULT_JOBS_DIR": str(jobs_dir),
            "F8A_JOBS_PORT": str(self.port),
            **env,
        }
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def start(self) -> Server:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "f8a_jobs.cli", "serve"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
            start_new_session=True,  # SIGKILL takes gunicorn and its workers down together
        )
        poll(self._ready, timeout=30, interval=0.1)
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
        try:
            return self.client.get("/readiness").status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig) if sig == signal.SIGKILL else self.process.send_signal(
                sig
            )
            self.process.wait(timeout=60)
        self.process = None

    def __getattr__(self, method: str) -> Any:
        return getattr(self.client, method)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def make(database_url: str, jobs_dir: Path | None = None, **env: str) -> Server:
        empty = tmp_path / "no-default-jobs"
        empty.mkdir(exist_ok=True)
        server = Server(
            database_url, jobs_dir or empty, tmp_path / f"server-{len(servers)}.log", **env
        )
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
        server.client.close()


@contextmanager
def module_server(
    backend: str, tmp: Path, config: pytest.Config, prepare: Callable[[Engine], Any] | None = None, **env: str
) -> Iterator[Server]:
    """One server for a whole test module, on an empty migrated database of ``backend`` (``env``:
    its settings beyond one worker)."""
    url = f"sqlite:///{tmp / 'jobs.db'}" if backend == "sqlite" else str(config.f8a_pg_url)  # type: ignore[attr-defined]
    engine = build_engine(url)
    migrate(engine)
    wipe(engine)
    if prepare:
        prepare(engine)
    (tmp / "defaults").mkdir()
    server = Server(url, tmp / "defaults", tmp / "server.log", **{"F8A_JOBS_WORKERS": "1", **env})
    if "F8A_JOBS_API_TOKENS" in env:
        server.client.headers["Authorization"] = f"Bearer {env['F8A_JOBS_API_TOKENS'].split(',')[0]}"
    server.start()
    server.engine = engine  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()
        engine.dispose()


class OwnPostgres:
    """A PostgreSQL server this test starts, stops and restarts (in a temporary directory).

    As root, its programs run as the ``postgres`` user: PostgreSQL refuses to run as root.
    """

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="f8a-jobs-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.directory, "postgres")
        self._pg_ctl = str(pg_bin() / "pg_ctl")  # type: ignore[operator]
        subprocess.run(
            [*self._as, str(pg_bin() / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"],  # type: ignore[operator]
            check=True, capture_output=True,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*self._as, self._pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.directory / "log"), "-w", "start"],
            check=True, capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run([*self._as, self._pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"], capture_output=True)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    server.start()
    yield server
    server.remove()
