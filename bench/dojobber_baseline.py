"""The DoJobber baseline of the workflow benchmarks: the same two graphs, in process, one task
at a time, nothing persisted. Results travel through DoJobber's ``global_storage``."""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from typing import Any

with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
    warnings.simplefilter("ignore", DeprecationWarning)  # it imports distutils
    import dojobber  # and says graphviz is missing: its graphs are not needed here


def _job(name: str, deps: list[type], run: Any, **attributes: Any) -> type:
    attributes.update(DEPS=deps, Run=run, TRIES=1)
    return type(name, (dojobber.RunonlyJob,), attributes)


def fanout_seconds(width: int) -> float:
    def root_run(self: Any) -> None:
        self.global_storage["results"] = {}

    def echo_run(self: Any) -> None:
        self.global_storage["results"][self.VALUE] = self.VALUE

    def final_run(self: Any) -> int:
        results = self.global_storage["results"]
        assert len([results[n] for n in range(width)]) == width
        return width

    root = _job("Root", [], root_run)
    fan = [_job(f"Echo{n}", [root], echo_run, VALUE=n) for n in range(width)]
    return _seconds(_job("Final", fan, final_run))


def chain_seconds(length: int) -> float:
    def noop(self: Any) -> None:
        return None

    previous: list[type] = []
    for n in range(length):
        previous = [_job(f"Hop{n}", previous, noop)]
    return _seconds(previous[0])


def _seconds(target: type) -> float:
    started = time.perf_counter()
    jobber = dojobber.DoJobber()
    jobber.configure(target, default_retry_delay=0)
    jobber.checknrun()
    elapsed = time.perf_counter() - started
    assert jobber.success(), jobber.nodeexceptions
    return elapsed
