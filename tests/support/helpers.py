"""Test helpers: waiting for a condition instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T] | T],
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll ``probe`` until it returns something truthy (and return that); fail on timeout
    with the last value or error, so the failure says what was seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            result = probe()
            if asyncio.iscoroutine(result):
                result = await result
            last = result
            if result:
                return result  # type: ignore[return-value]
        except (KeyError, AssertionError, LookupError) as error:
            last = error
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {timeout}s; last seen: {last!r}")
        await asyncio.sleep(interval)
