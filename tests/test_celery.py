"""Flows delivered to a real Celery worker through a real broker (Redis, RabbitMQ)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid

import pytest

from tests.conftest import BROKERS, ROOT, free_port, poll


class Worker:
    def __init__(self, broker_url, tmp_path):
        self.queue = f"f8a-jobs-test-{uuid.uuid4().hex[:8]}"
        self.received_path = tmp_path / f"{self.queue}.jsonl"
        self.log_path = tmp_path / f"{self.queue}.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "F8A_TEST_BROKER_URL": broker_url,
               "F8A_TEST_QUEUE": self.queue, "F8A_TEST_RECEIVED": str(self.received_path)}
        self.process = subprocess.Popen(
            [str(os.path.join(os.path.dirname(sys.executable), "celery")), "-A", "tests.celery_worker", "worker",
             "--pool", "solo", "-Q", self.queue, "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
            env=env, cwd=ROOT, stdout=self.log_path.open("w"), stderr=subprocess.STDOUT,
        )
        poll(lambda: "ready" in self.log_path.read_text(), timeout=60)

    def received(self):
        if not self.received_path.exists():
            return []
        return [json.loads(line) for line in self.received_path.read_text().splitlines()]

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


@pytest.fixture
def worker_factory(tmp_path):
    workers = []

    def make(broker_url):
        workers.append(Worker(broker_url, tmp_path))
        return workers[-1]

    yield make
    for worker in workers:
        worker.stop()


def flows_of(server, job_id):
    return server.get("/flows", params={"job_id": job_id}).json()["flows"]


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_the_worker_receives_exactly_the_flows_a_job_dispatched(broker, pg_url, pg_engine, server_factory, worker_factory):
    worker = worker_factory(BROKERS[broker])
    server = server_factory(pg_url, F8A_JOBS_WORKERS="1", F8A_JOBS_BROKER_URL=BROKERS[broker], F8A_JOBS_BROKER_QUEUE=worker.queue).start()
    plain = server.post("/jobs/flow-scheduling", json={
        "flow_name": "bayesianFlow", "flow_arguments": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}).json()["job"]
    selective = server.post("/jobs/selective-flow-scheduling", json={
        "flow_name": "otherFlow", "task_names": ["github_details"], "run_subsequent": True,
        "flow_arguments": [{"name": "d"}]}).json()["job"]
    received = poll(lambda: len(worker.received()) >= 4 and worker.received(), timeout=30)
    sent = {flow["id"]: flow for job in (plain, selective) for flow in flows_of(server, job["job_id"])}
    assert len(received) == 4 and {flow["status"] for flow in sent.values()} == {"sent"}
    for message in received:
        flow = sent[message["headers"]["f8a_jobs_outbox_id"]]
        assert message["id"] == f"f8a-jobs-flow-{flow['key']}" and message["headers"]["f8a_jobs_flow_key"] == flow["key"]
        assert message["name"] == flow["flow_name"] and message["kwargs"] == flow["arguments"]
    assert sorted(m["kwargs"]["name"] for m in received) == ["a", "b", "c", "d"]
    other = next(m for m in received if m["name"] == "otherFlow")
    assert other["headers"]["f8a_jobs_task_names"] == ["github_details"]
    assert other["headers"]["f8a_jobs_run_subsequent"] is True
    assert other["kwargs"] == {"name": "d", "job_id": selective["job_id"]}


class RedisServer:
    def __init__(self, tmp_path):
        self.port = free_port()
        self.tmp_path = tmp_path
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.tmp_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        poll(lambda: subprocess.run([shutil.which("redis-cli"), "-p", str(self.port), "ping"],
                                    capture_output=True, text=True).stdout.strip() == "PONG")
        return self

    def kill(self):
        self.process.kill()
        self.process.wait()


def test_delivery_resumes_after_the_broker_returns_and_nothing_is_lost(pg_url, pg_engine, server_factory, worker_factory, tmp_path):
    redis = RedisServer(tmp_path).start()
    url = f"redis://127.0.0.1:{redis.port}/0"
    try:
        worker = worker_factory(url)
        server = server_factory(pg_url, F8A_JOBS_WORKERS="1", F8A_JOBS_BROKER_URL=url, F8A_JOBS_BROKER_QUEUE=worker.queue).start()
        first = server.post("/jobs/flow-scheduling", json={"flow_name": "bayesianFlow", "flow_arguments": [{"n": 1}, {"n": 2}]}).json()["job"]
        poll(lambda: len(worker.received()) == 2, timeout=30)

        redis.kill()
        during = server.post("/jobs/flow-scheduling", json={
            "flow_name": "bayesianFlow", "flow_arguments": [{"n": n} for n in range(3, 8)]}).json()["job"]
        poll(lambda: len(flows_of(server, during["job_id"])) == 5)  # the job ran: flows are in the outbox
        assert {flow["status"] for flow in flows_of(server, during["job_id"])} == {"pending"}
        poll(lambda: "flow delivery failed" in server.log(), timeout=30)  # the relay tried, and will again

        redis.start()
        received = poll(lambda: len(worker.received()) >= 7 and worker.received(), timeout=60)
        assert sorted(m["kwargs"]["n"] for m in received) == list(range(1, 8))
        assert len({m["headers"]["f8a_jobs_outbox_id"] for m in received}) == 7  # none twice
        assert {f["status"] for job in (first, during) for f in flows_of(server, job["job_id"])} == {"sent"}
    finally:
        redis.kill()
