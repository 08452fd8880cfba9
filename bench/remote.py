"""Remote execution: W1 (a root, N parts, a final task taking their results; no limit on how
many run at once, as W1 has none) whose parts sleep 50 ms, run by ``f8a-jobs worker`` processes
of concurrency 8 (a pool of threads: the tasks wait on I/O; ``F8A_JOBS_BENCH_POOL=prefork`` for
processes) on local Redis, once on one worker and once on two; the same W1 on the in-process
executor with 8 threads gives the overhead per task. Also the leading process's CPU per 1,000
remote tasks and the broker's messages a task (Redis's LPUSH count: one a message)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import kombu
import psutil
import redis
from sqlalchemy import Engine

from bench.ours import migrated
from bench.workflows import seconds_to_success
from tests.conftest import ROOT, TEST_SETTINGS, Server, poll

BROKER = os.environ.get("F8A_JOBS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
CONCURRENCY = 8
SLEEP = 0.05
POOL = os.environ.get("F8A_JOBS_BENCH_POOL", "threads")
REPEATS = 3


def sleeping_fanout(job_id: str, width: int) -> dict:
    return {
        "job_id": job_id,
        "state": "paused",
        "max_concurrent": width,  # W1 sets no limit: the workers' slots are the limit
        "tasks": [
            {"name": "root", "handler": "Noop"},
            {
                "name": "fan",
                "handler": "Sleep",
                "depends_on": ["root"],
                "for_each": [{"seconds": SLEEP} for _ in range(width)],
            },
            {
                "name": "final",
                "handler": "Count",
                "depends_on": ["fan"],
                "kwargs": {"values": {"$result": "fan"}},
            },
        ],
    }


def measure(url: str, workdir: Path, width: int) -> dict[str, float]:
    """Each time is the median of ``REPEATS`` W1s (single runs on 2 cores vary by 5 %)."""
    engine = migrated(url)
    (workdir / "defaults").mkdir(exist_ok=True)
    figures: dict[str, float] = {}
    local = _server(url, workdir, "local", F8A_JOBS_EXECUTOR_THREADS=str(CONCURRENCY))
    try:
        figures["local_s"] = _median_seconds(local, engine, "local", width)
    finally:
        local.stop()
    queue = f"f8a-jobs-bench-{uuid.uuid4().hex[:8]}"
    server = _server(url, workdir, "remote", F8A_JOBS_EXECUTOR="celery", F8A_JOBS_TASK_QUEUE=queue)
    workers = [_worker(url, workdir, queue, 0)]
    try:
        seconds_to_success(server, engine, sleeping_fanout("warm-up", 50))  # connections made
        cpu, pushes = _cpu_seconds(server), _pushes()
        figures["one_s"] = _median_seconds(server, engine, "one", width)
        tasks = REPEATS * (width + 2)
        figures["cpu_per_1000_s"] = (_cpu_seconds(server) - cpu) / tasks * 1000
        figures["messages_per_task"] = (_pushes() - pushes) / tasks
        workers.append(_worker(url, workdir, queue, 1))
        seconds_to_success(server, engine, sleeping_fanout("warm-up-2", 50))
        figures["two_s"] = _median_seconds(server, engine, "two", width)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=60)
        server.stop()
        engine.dispose()
        with kombu.Connection(BROKER) as connection:
            connection.default_channel.queue_delete(queue)
    figures["overhead_ms"] = (figures["one_s"] - figures["local_s"]) / width * CONCURRENCY * 1000
    return figures


def _median_seconds(server: Server, engine: Engine, name: str, width: int) -> float:
    jobs = [sleeping_fanout(f"{name}-{n}", width) for n in range(REPEATS)]
    return statistics.median(seconds_to_success(server, engine, job) for job in jobs)


def _server(url: str, workdir: Path, name: str, **env: str) -> Server:
    settings = {"F8A_JOBS_BROKER_URL": BROKER, "F8A_JOBS_WORKERS": "1"}
    return Server(
        url,
        workdir / "defaults",
        workdir / f"{name}.log",
        F8A_JOBS_LOG_LEVEL="WARNING",
        **settings,
        **env,
    ).start()


def _worker(url: str, workdir: Path, queue: str, n: int) -> subprocess.Popen[bytes]:
    log_path = workdir / f"worker-{n}.log"
    env = {
        **os.environ,
        **TEST_SETTINGS,
        "PYTHONPATH": str(ROOT),
        "F8A_JOBS_DATABASE_URL": url,
        "F8A_JOBS_BROKER_URL": BROKER,
        "F8A_JOBS_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "f8a_jobs.cli", "worker", "--queues", queue, "--pool", POOL]
    process = subprocess.Popen(
        [*command, "--concurrency", str(CONCURRENCY)],
        env=env,
        cwd=ROOT,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )
    poll(lambda: _ready(url, process), timeout=60, interval=0.2)
    return process


def _ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    """All pool processes are up (they fork after the main one connects)."""
    if process.poll() is not None:
        raise RuntimeError(f"the worker exited with {process.returncode}")
    children = psutil.Process(process.pid).children()
    if POOL == "prefork" and len(children) < CONCURRENCY:
        return False
    time.sleep(1.0)  # the consumer connects once the pool is up
    return True


def _cpu_seconds(server: Server) -> float:
    """User and system CPU of the service's processes (the leader runs in its one worker)."""
    assert server.process is not None
    root = psutil.Process(server.process.pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def _pushes() -> int:
    stats = redis.Redis.from_url(BROKER).info("commandstats")
    return int(stats.get("cmdstat_lpush", {}).get("calls", 0))
