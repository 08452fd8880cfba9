"""Handlers the tests load through F8A_JOBS_HANDLER_MODULES, the way an operator would."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from datetime import datetime
from typing import Literal

from f8a_jobs.handlers import Flow
from f8a_jobs.handlers.base import BaseHandler

release = threading.Event()


class Fail(BaseHandler):
    """Always raises, to show a failed run is recorded and the schedule goes on."""

    def execute(self, message: str) -> None:
        raise RuntimeError(message)


class Block(BaseHandler):
    """Runs until the test releases it, to keep a run in progress."""

    def execute(self, timeout: float = 10.0) -> None:
        release.wait(timeout)


class Sleep(BaseHandler):
    """Works for ``seconds`` (a long-running run, for hand-over tests)."""

    def execute(self, seconds: float) -> str:
        time.sleep(seconds)
        return "slept"


class SleepThenMark(BaseHandler):
    """Works for ``seconds``, then creates ``path``: a test sees when the work ended."""

    def execute(self, seconds: float, path: str) -> str:
        time.sleep(seconds)
        with open(path, "a"):
            pass
        return "slept"


class NulError(BaseHandler):
    """Fails with a message the database cannot store as it is."""

    def execute(self) -> None:
        raise RuntimeError("bad\x00byte")


class NulFlow(BaseHandler):
    """Emits a flow whose arguments PostgreSQL refuses (NUL in JSON)."""

    def execute(self) -> None:
        self.emit_flows([Flow("nulFlow", {"text": "a\x00b"})])


class Context(BaseHandler):
    """Returns its run context, to show a handler gets it."""

    def execute(self, label: Literal["a", "b"], run_id: str, scheduled_for: datetime) -> dict[str, str]:
        return {"label": label, "run_id": run_id, "scheduled_for": scheduled_for.isoformat()}


class Rundate(BaseHandler):
    """Returns Datatailr's reserved rundate and the slot it stands for."""

    def execute(self, rundate: str, scheduled_for: datetime) -> dict[str, str]:
        return {"rundate": rundate, "scheduled_for": scheduled_for.isoformat()}


class Huge(BaseHandler):
    """Returns more than a run may keep."""

    def execute(self) -> str:
        return "x" * 100_000


# --- workflow tasks --------------------------------------------------------------------------

events: list[tuple[str, str, float]] = []  # (what, task, monotonic time), for in-process tests
marks: set[str] = set()  # what Idempotent tasks have made true


class Record(BaseHandler):
    """Returns its kwargs; ``seconds`` of work first. Marks start and end with times."""

    def execute(self, task_name: str | None = None, seconds: float = 0.0, **kwargs: object) -> dict:
        events.append(("start", str(task_name), time.monotonic()))
        if seconds:
            time.sleep(seconds)
        events.append(("end", str(task_name), time.monotonic()))
        return {"task": task_name, **kwargs}


class Square(BaseHandler):
    def execute(self, value: int) -> int:
        return value * value


class Total(BaseHandler):
    def execute(self, values: list) -> int:
        return sum(values)


class Flaky(BaseHandler):
    """Fails its first ``failures`` tries (counted per ``key``), then returns the try count."""

    tries: dict[str, int] = {}

    def execute(self, key: str, failures: int) -> int:
        count = Flaky.tries[key] = Flaky.tries.get(key, 0) + 1
        events.append(("try", key, time.monotonic()))
        if count <= failures:
            raise RuntimeError(f"{key}: try {count} fails")
        return count


class Idempotent(BaseHandler):
    """DoJobber's shape: check whether ``mark`` holds; execute makes it hold (unless
    ``broken``); cleanup records the unwinding (and raises with ``cleanup_fails``)."""

    def check(self, mark: str, broken: bool = False, cleanup_fails: bool = False) -> bool:
        return mark in marks

    def execute(self, mark: str, broken: bool = False, cleanup_fails: bool = False) -> None:
        events.append(("execute", mark, time.monotonic()))
        if not broken:
            marks.add(mark)

    def cleanup(self, mark: str, broken: bool = False, cleanup_fails: bool = False) -> None:
        events.append(("cleanup", mark, time.monotonic()))
        if cleanup_fails:
            raise RuntimeError(f"cannot undo {mark}")


class Found(BaseHandler):
    """A check that finds ``found`` already there: a value (the task's result), a bare True,
    or False (not there; execute cannot make it so)."""

    def check(self, found: object) -> object:
        return found

    def execute(self, found: object) -> None:
        events.append(("execute", "found", time.monotonic()))


class Echo(BaseHandler):
    """Returns its value (the workflow benchmarks' no-op that returns something)."""

    def execute(self, value: object) -> object:
        return value


class Count(BaseHandler):
    def execute(self, values: list) -> int:
        return len(values)


class Touch(BaseHandler):
    """Appends its process id to ``path``, then works ``seconds``: the file counts its starts
    across processes (remote workers)."""

    def execute(self, path: str, seconds: float = 0.0, value: object = None) -> object:
        with open(path, "a") as marks_file:
            marks_file.write(f"{os.getpid()}\n")
        time.sleep(seconds)
        return value


class Chatty(BaseHandler):
    """Logs ``lines`` lines through ``self.log`` and one through another logger, prints one,
    writes one to stderr; waits for ``wait_for`` to exist (a test lets it go on); fails its
    first ``fail_first`` tries (counted in the file ``counter``), or every try with ``fail``,
    naming ``password`` (which the log and the error must mask)."""

    def execute(
        self,
        tag: str = "chatty",
        lines: int = 3,
        fail: bool = False,
        wait_for: str = "",
        password: str = "",
        odd: bool = False,
        say: str = "",
        fail_first: int = 0,
        counter: str = "",
    ) -> int:
        if say:
            self.log.info("%s says %s", tag, say)
        for number in range(lines):
            self.log.info("%s line %d", tag, number)
        logging.getLogger("some.library").warning("%s from a library", tag)
        if odd:  # NUL, and a byte that is not UTF-8 (as surrogateescape decodes it)
            self.log.warning("%s nul\x00here, bad %s byte", tag, b"\xff".decode(errors="surrogateescape"))
        print(f"{tag} printed")
        sys.stderr.write(f"{tag} on stderr\n")
        if wait_for:
            deadline = time.monotonic() + 60
            while not os.path.exists(wait_for) and time.monotonic() < deadline:
                time.sleep(0.02)
            self.log.info("%s went on", tag)
        if counter:  # tries counted in a file: any process may run the next
            with open(counter, "a") as marks:
                marks.write("x")
            if os.path.getsize(counter) <= fail_first:
                raise RuntimeError(f"{tag} try {os.path.getsize(counter)} fails")
        if fail:
            raise RuntimeError(f"{tag} failed, password {password}")
        return lines


def scaled(value: int, worker_pid: bool = False, sub_job_name=None, rundate=None) -> dict:
    """A plain function as an entry point (Datatailr): its kwargs, and reserved arguments."""
    return {"value": value * 2, "name": sub_job_name, "rundate": rundate, "pid": os.getpid()}


def added(scaled: dict, extra: int = 0) -> int:
    """Gets ``scaled``'s result by that function's name."""
    return scaled["value"] + extra
