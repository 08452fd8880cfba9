"""The garbage collector paused while bulk work runs, in any thread, and restored after."""

from __future__ import annotations

import gc
import threading

from f8a_jobs.core.collector import collector_paused


def test_paused_until_the_last_block_ends_in_any_thread():
    assert gc.isenabled()
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with collector_paused():
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    with collector_paused():
        thread.start()
        entered.wait(5)
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread's block goes on
    release.set()
    thread.join(5)
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled():
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
