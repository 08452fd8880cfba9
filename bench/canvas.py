"""The Celery canvas baseline of the workflow benchmarks: the same two graphs as
``bench.workflows`` as ``chain(root, chord(group(N), final))`` and a chain of 200, on a real
worker (prefork, 2 processes: its best configuration on 2 cores) on the local Redis, with the
Redis result backend. Celery keeps no durable state about the graph: a lost worker loses it.

The worker is started by ``workers()`` with ``-A bench.canvas``: this module is also its app.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from celery import Celery, chain, chord, group

REDIS_URL = os.environ.get("F8A_JOBS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
QUEUE = os.environ.get("F8A_JOBS_BENCH_CELERY_QUEUE", "f8a-jobs-bench")
ROOT = Path(__file__).resolve().parent.parent

app = Celery("f8a_jobs_bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(task_default_queue=QUEUE, result_expires=600, worker_prefetch_multiplier=4)


@app.task(name="bench.noop")
def noop() -> None:
    return None


@app.task(name="bench.echo")
def echo(value: int) -> int:
    return value


@app.task(name="bench.count")
def count(values: list[int]) -> int:
    return len(values)


def fanout_seconds(width: int) -> float:
    canvas = chain(noop.si(), chord(group(echo.si(n) for n in range(width)), count.s()))
    started = time.perf_counter()
    result = canvas.apply_async().get(timeout=600)
    elapsed = time.perf_counter() - started
    assert result == width, result
    return elapsed


def chain_seconds(length: int) -> float:
    canvas = chain(*(noop.si() for _ in range(length)))
    started = time.perf_counter()
    canvas.apply_async().get(timeout=600)
    return time.perf_counter() - started


@contextmanager
def worker(log_path: Path, processes: int = 2) -> Iterator[None]:
    """A prefork worker with ``processes`` children, on a queue of its own, until the block ends."""
    queue = f"{QUEUE}-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = queue
    env = {**os.environ, "PYTHONPATH": str(ROOT), "F8A_JOBS_BENCH_CELERY_QUEUE": queue}
    celery = Path(sys.executable).with_name("celery")
    command = [str(celery), "-A", "bench.canvas", "worker", "--pool", "prefork"]
    command += [f"--concurrency={processes}", "-Q", queue, "--without-gossip", "--without-mingle"]
    command += ["--without-heartbeat", "--loglevel", "WARNING"]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        noop.si().apply_async().get(timeout=60)  # the worker is up and consuming
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
