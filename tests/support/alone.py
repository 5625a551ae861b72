"""A test that bounds wall-clock time (how long an event loop stalled, how soon a request is
served) measures the machine as much as the code when other pytest-xdist workers share its
cores. Such a test, marked ``alone``, runs while no other test of the run does.

Every test holds a shared lock on one file (the room) while it runs, from its first fixture
to its last; an ``alone`` test holds it exclusively. A second file, the turnstile, keeps the
``alone`` test from waiting forever: it holds the turnstile while it waits for the room to
empty, so no new test enters meanwhile (flock alone would let shared holders starve it)."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def take_turn(directory: Path, *, alone: bool) -> Iterator[None]:
    """Run the body beside other tests, or, if ``alone``, with no other test running;
    ``directory`` is shared by the workers of one run."""
    with (
        (directory / "turnstile.lock").open("a") as turnstile,
        (directory / "room.lock").open("a") as room,
    ):
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(room, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
