"""``alone`` tests under pytest-xdist: one waits for the tests already running to finish,
and no test starts while it waits or runs (tests/support/alone.py). Threads stand in for
workers: each ``take_turn`` opens the lock files anew, as another process would."""

from __future__ import annotations

import contextlib
import fcntl
import threading
import time
from pathlib import Path

from tests.support.alone import take_turn


def _turnstile_taken(directory: Path) -> bool:
    with (directory / "turnstile.lock").open("a") as turnstile:
        try:
            fcntl.flock(turnstile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(turnstile, fcntl.LOCK_UN)
        return False


def test_an_alone_test_waits_for_the_room_to_empty_and_keeps_newcomers_out(
    tmp_path: Path,
) -> None:
    events: list[str] = []

    def alone() -> None:
        with take_turn(tmp_path, alone=True):
            events.append("alone in")
            events.append("alone done")  # still inside: nobody else may have started

    def newcomer() -> None:
        with take_turn(tmp_path, alone=False):
            events.append("newcomer in")

    with contextlib.ExitStack() as running:
        running.enter_context(take_turn(tmp_path, alone=False))
        waiting = threading.Thread(target=alone)
        waiting.start()
        deadline = time.monotonic() + 10
        while not _turnstile_taken(tmp_path):  # the alone test is waiting for the room
            assert time.monotonic() < deadline, "the alone test never reached the turnstile"
            time.sleep(0.01)
        late = threading.Thread(target=newcomer)
        late.start()
        late.join(timeout=0.2)
        assert late.is_alive(), events  # held at the turnstile, not beside the alone test
        events.append("running out")
    waiting.join(timeout=10)
    late.join(timeout=10)
    assert events == ["running out", "alone in", "alone done", "newcomer in"]


def test_tests_that_are_not_alone_run_side_by_side(tmp_path: Path) -> None:
    entered = threading.Event()

    def beside() -> None:
        with take_turn(tmp_path, alone=False):
            entered.set()

    with take_turn(tmp_path, alone=False):
        other = threading.Thread(target=beside)
        other.start()
        assert entered.wait(timeout=10), "a second test waited for the first"
    other.join(timeout=10)
