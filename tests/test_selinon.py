"""Flows reach a real, unmodified Selinon worker (issue 19): the stock ``celery worker`` of an
app Selinon configures from ``examples/selinon/``, whose two tasks record what they got."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import kombu
import pytest

from f8a_jobs.storage import demo
from tests.conftest import BROKERS, BROKERS_HOW_TO, ROOT, free_port, poll
from tests.test_celery import RedisServer
from tests.test_default_jobs import run_cli

CONFIG = ROOT / "examples" / "selinon"
QUEUES = "f8a_example_dispatcher,f8a_example_tasks"
README_FLOWS = {
    "flow_arguments": [
        {"ecosystem": "npm", "force": True, "name": "serve-static", "version": "1.7.1"},
        {"ecosystem": "maven", "force": True, "name": "net.iharder:base64", "version": "2.3.9"},
    ],
    "flow_name": "bayesianFlow",
}


def redis_db(number: int) -> str:
    """The test Redis, database ``number``: Selinon's result backend and broker stay apart
    from the other tests' databases."""
    parts = urlsplit(BROKERS["redis"])
    return urlunsplit(parts._replace(path=f"/{number}"))


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request):
    return redis_db(12) if request.param == "redis" else BROKERS["rabbitmq"]


class SelinonWorker:
    """The stock worker process; its tasks append what they got to ``record``."""

    def __init__(self, broker: str, tmp_path: Path) -> None:
        self.record = tmp_path / "record.jsonl"
        self.log = tmp_path / "worker.log"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "F8A_SELINON_BROKER_URL": broker,
            "F8A_SELINON_RESULT_BACKEND": redis_db(13),
            "F8A_SELINON_RECORD": str(self.record),
        }
        command = [sys.executable, "-m", "celery", "-A", "examples.selinon.worker", "worker", "-Q", QUEUES]
        command += ["-c", "2", "--purge", "--without-gossip", "--without-mingle", "-l", "INFO"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)
        poll(lambda: b"ready." in self.log.read_bytes(), timeout=60)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


@pytest.fixture
def selinon_worker(broker, tmp_path):
    worker = SelinonWorker(broker, tmp_path)
    yield worker.record
    worker.stop()


def recorded(record: Path) -> list[dict]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]


@pytest.fixture
def server(broker, db_url, engine, server_factory):
    return server_factory(
        db_url,
        F8A_JOBS_FLOW_DISPATCHER="selinon",
        F8A_JOBS_BROKER_URL=broker,
        F8A_JOBS_SELINON_CONFIG=str(CONFIG),
    ).start()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_readme_example_runs_each_flow_on_the_selinon_worker(backend, server, selinon_worker):
    created = server.post("/jobs/flow-scheduling", params={"job_id": "readme"}, json=README_FLOWS)
    assert created.status_code == 201, created.text
    lines = poll(lambda: (found := recorded(selinon_worker)) and len(found) >= 4 and found, timeout=60)
    seen = {(line["task"], line["node_args"]["name"]) for line in lines}
    assert seen == {(task, name) for task in ("Metadata", "Report") for name in ("serve-static", "net.iharder:base64")}
    for line in lines:
        assert line["flow"] == "bayesianFlow" and line["node_args"]["job_id"] == "readme"
        assert {"ecosystem", "name", "version", "force"} <= set(line["node_args"])
    flows = server.get("/flows", params={"job_id": "readme"}).json()["flows"]
    assert [flow["status"] for flow in flows] == ["sent", "sent"]
    assert {flow["task_id"] for flow in flows} == {line["dispatcher_id"] for line in lines}


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_selective_run_of_the_first_task_runs_only_it(backend, server, selinon_worker):
    selective = {**README_FLOWS, "flow_arguments": README_FLOWS["flow_arguments"][:1], "task_names": ["Metadata"]}
    created = server.post("/jobs/selective-flow-scheduling", params={"job_id": "one"}, json=selective)
    assert created.status_code == 201, created.text
    poll(lambda: recorded(selinon_worker), timeout=60)
    marker = server.post("/jobs/flow-scheduling", params={"job_id": "after"}, json=README_FLOWS | {"flow_arguments": [{"name": "marker"}]})
    assert marker.status_code == 201  # the worker takes it after the selective flow: once it ran, that one is done
    poll(lambda: any(line["node_args"].get("name") == "marker" and line["task"] == "Report" for line in recorded(selinon_worker)), timeout=60)
    selective_lines = [line for line in recorded(selinon_worker) if line["node_args"]["job_id"] == "one"]
    assert [line["task"] for line in selective_lines] == ["Metadata"]


SELINON_ENV = {"F8A_JOBS_FLOW_DISPATCHER": "selinon", "F8A_JOBS_SELINON_CONFIG": str(CONFIG)}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_flow_or_task_the_workers_do_not_know_is_refused_at_creation(backend, db_url, engine, server_factory):
    server = server_factory(db_url, F8A_JOBS_BROKER_URL=redis_db(12), **SELINON_ENV).start()
    unknown = server.post("/jobs/flow-scheduling", json={**README_FLOWS, "flow_name": "noSuchFlow"})
    assert unknown.status_code == 400 and unknown.json()["field"] == "kwargs.flow_name", unknown.text
    assert "its flows: bayesianFlow" in unknown.json()["detail"]
    task = server.post("/jobs/selective-flow-scheduling", json={**README_FLOWS, "task_names": ["Nope"]})
    assert task.status_code == 400 and task.json()["field"] == "kwargs.task_names", task.text
    assert "No path to node 'Nope'" in task.json()["detail"]
    assert server.get("/jobs").json()["total"] == 0


def test_a_default_job_naming_an_unknown_flow_is_refused_by_initjobs(db_url, engine, tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "job_id: bad\nhandler: FlowScheduling\nkwargs: {flow_name: noSuchFlow, flow_arguments: []}\n"
    )
    result = run_cli("initjobs", "--strict", "--dir", str(tmp_path), database_url=db_url,
                     F8A_JOBS_BROKER_URL=redis_db(12), **SELINON_ENV)
    assert result.returncode == 1
    assert "'noSuchFlow' is no flow of the Selinon configuration" in result.stderr


def test_a_configuration_selinon_cannot_load_stops_the_service_naming_it(db_url, tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "nodes.yml").write_text("tasks:\n  - name: A\n    import: x\nflows:\n  - f\n")
    edges = "flow-definitions:\n  - name: f\n    edges:\n      - from: Missing\n        to: A\n"
    (tmp_path / "flows" / "f.yml").write_text(edges)
    result = run_cli("serve", database_url=db_url, F8A_JOBS_BROKER_URL=redis_db(12),
                     F8A_JOBS_FLOW_DISPATCHER="selinon", F8A_JOBS_SELINON_CONFIG=str(tmp_path))
    assert result.returncode == 2
    assert f"F8A_JOBS_SELINON_CONFIG={tmp_path}: Selinon cannot load it" in result.stderr
    assert "Traceback" not in result.stderr


FILTERED = {
    "flow_name": "bayesianFlow",
    "flow_arguments": [{"force": True, "$filter": {
        "table": "analyses", "where": {"analyses.finished_at": None},
        "joins": [{"table": "versions", "on": {"analyses.version_id": "versions.id"}},
                  {"table": "packages", "on": {"versions.package_id": "packages.id"}},
                  {"table": "ecosystems", "on": {"packages.ecosystem_id": "ecosystems.id"}}],
        "select": ["ecosystems.name as ecosystem", "packages.name as name", "versions.identifier as version"],
    }}],
}


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_filter_becomes_one_selinon_flow_per_row(backend, broker, db_url, engine, server_factory, tmp_path):
    demo.load(engine)
    worker = SelinonWorker(broker, tmp_path)
    try:
        server = server_factory(db_url, F8A_JOBS_BROKER_URL=broker, **SELINON_ENV).start()
        assert server.post("/jobs/flow-scheduling", params={"job_id": "rows"}, json=FILTERED).status_code == 201
        lines = poll(lambda: len(found := recorded(worker.record)) >= 4 and found, timeout=60)
        runs = {(line["task"], line["node_args"]["name"], line["node_args"]["version"]) for line in lines}
        rows = {("serve-static", "1.7.2"), ("net.iharder:base64", "2.3.9")}
        assert runs == {(task, *row) for task in ("Metadata", "Report") for row in rows}
    finally:
        worker.stop()
        demo.metadata.drop_all(engine)  # the database is this process's for later tests too


class OwnRabbitMQ:
    """A RabbitMQ server of this test's own (Debian's ``rabbitmq-server``), on free ports in a
    temporary directory, to stop and start again; its queues survive the restart."""

    def __init__(self, tmp_path: Path) -> None:
        self.port, dist = free_port(), free_port()
        self.home = tmp_path / "rabbitmq"
        self.home.mkdir()
        (self.home / "plugins").write_text("[].")
        self.env = {
            **os.environ,
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": f"f8atest{self.port}@localhost",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(dist),
            "RABBITMQ_MNESIA_BASE": str(self.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.home / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.home / "none"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.home / "plugins"),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self) -> OwnRabbitMQ:
        # Debian's /usr/sbin wrapper turns root into the rabbitmq user, who cannot write here
        debian = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
        server = str(debian) if debian.exists() else shutil.which("rabbitmq-server")
        if server is None:
            pytest.fail(f"rabbitmq-server is not installed (needed to stop a broker)\n{BROKERS_HOW_TO}")
        log = (self.home / "out.log").open("ab")
        self.process = subprocess.Popen(
            [server], env=self.env, stdout=log, stderr=log, start_new_session=True
        )
        poll(self._accepts, timeout=90, interval=0.5)
        return self

    def _accepts(self) -> bool:
        try:
            with kombu.Connection(self.url, connect_timeout=1) as connection:
                connection.connect()
            return True
        except Exception:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


class OwnRedis(RedisServer):
    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.mark.parametrize("backend", ["postgresql"])
@pytest.mark.parametrize("kind", [OwnRedis, OwnRabbitMQ])
def test_a_flow_sent_while_the_broker_is_down_runs_once_when_it_returns(
    backend, kind, db_url, engine, server_factory, tmp_path
):
    own = kind(tmp_path).start()
    worker = SelinonWorker(own.url, tmp_path)
    try:
        server = server_factory(db_url, F8A_JOBS_WORKERS="1", F8A_JOBS_BROKER_URL=own.url, **SELINON_ENV).start()
        own.kill()
        job = server.post("/jobs/flow-scheduling", params={"job_id": "outage"}, json=README_FLOWS)
        assert job.status_code == 201, job.text
        poll(lambda: len(server.get("/flows", params={"job_id": "outage"}).json()["flows"]) == 2)
        poll(lambda: "flow delivery failed" in server.log(), timeout=30)  # kept, and tried again
        assert recorded(worker.record) == []
        own.start()
        poll(lambda: len(recorded(worker.record)) >= 4, timeout=120)
        marker = server.post("/jobs/flow-scheduling", params={"job_id": "marker"}, json=README_FLOWS | {"flow_arguments": [{"name": "m"}]})
        assert marker.status_code == 201
        poll(lambda: any(line["node_args"]["job_id"] == "marker" for line in recorded(worker.record)), timeout=60)
        ran = [(line["task"], line["node_args"]["name"]) for line in recorded(worker.record) if line["node_args"]["job_id"] == "outage"]
        assert sorted(ran) == sorted((task, name) for task in ("Metadata", "Report") for name in ("serve-static", "net.iharder:base64"))
    finally:
        worker.stop()
        own.kill()
