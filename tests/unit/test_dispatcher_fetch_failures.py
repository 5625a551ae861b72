"""While NATS is away every fetch of a Function's worker fails, twice a second: the
dispatcher says so once (then once a minute) and says the recovery once, not a line per
failure per Function (issue 29, point 5)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from hanshu_api.settings import NatsSettings
from hanshu_dispatcher import worker
from hanshu_dispatcher.config import DispatcherConfig
from hanshu_dispatcher.worker import FunctionWorker
from nats.errors import ConnectionClosedError


class AwaySubscription:
    """Fails ``failures`` fetches as a disconnected client does, then fetches nothing
    (once at once, then waiting for messages)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.fetches = 0
        self.recovered = asyncio.Event()

    async def fetch(self, batch: int, timeout: float) -> list[Any]:
        self.fetches += 1
        if self.fetches <= self.failures:
            raise ConnectionClosedError
        if self.fetches == self.failures + 1:
            return []
        self.recovered.set()
        await asyncio.sleep(3600)  # nothing stored: the pull waits
        return []


async def test_a_run_of_failed_fetches_is_said_once_a_minute_and_the_recovery_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(worker, "FETCH_RETRY_SECONDS", 0.0)
    caplog.set_level(logging.INFO, logger="hanshu.dispatcher")
    config = DispatcherConfig(nats=NatsSettings(url="nats://unused"), gateway_internal_url="")
    fn = FunctionWorker(("default", "api"), config, None, None, None)  # type: ignore[arg-type]
    subscription = AwaySubscription(failures=worker.FETCH_FAILURES_PER_LOG + 5)
    pulling = asyncio.create_task(fn._pull(subscription))
    try:
        await asyncio.wait_for(subscription.recovered.wait(), 30)
    finally:
        pulling.cancel()
    failed = [r for r in caplog.records if "fetching failed" in r.getMessage()]
    assert len(failed) == 2  # the first, and the 121st (a minute at two a second)
    assert "default/api: fetching failed" in failed[0].getMessage()
    again = [r.getMessage() for r in caplog.records if "fetching again" in r.getMessage()]
    assert again == [f"default/api: fetching again after {subscription.failures} failures"]
