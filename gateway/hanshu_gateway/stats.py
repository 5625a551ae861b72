"""Per-function request stats, pushed to the autoscaler every second and at once when a
request arrives at a cold function, as ``hanshu_api.stats_report.StatsReport``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import aiohttp
from hanshu_api.platform import FunctionKey
from hanshu_api.stats_report import (
    LATENCY_BUCKETS,
    ColdRequest,
    FunctionStat,
    Outcomes,
    StatsReport,
    latency_bucket,
)

log = logging.getLogger("hanshu.gateway")


@dataclass
class FunctionStats:
    in_flight: int = 0  # requests the gateway holds for the function: waiting or being served
    queued: int = 0  # of those, the ones waiting for a replica
    arrivals: int = 0  # since the last report
    last_completed: float | None = None  # time.monotonic() of the last finished response
    # Requests a replica finished since the last report (the canary controller's figures):
    # how many, how many failed, latency counts per LATENCY_BUCKETS bucket.
    completed: int = 0
    failed: int = 0
    latency: list[int] | None = None

    def record_outcome(self, seconds: float, failed: bool) -> None:
        """A replica finished one request (it answered, failed or timed out)."""
        if self.latency is None:
            self.latency = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency[latency_bucket(seconds)] += 1
        self.completed += 1
        self.failed += failed

    def _take_outcomes(self) -> Outcomes | None:
        if not self.completed or self.latency is None:
            return None
        outcomes = Outcomes(self.completed, self.failed, tuple(self.latency))
        self.completed = self.failed = 0
        self.latency = None
        return outcomes

    def snapshot(self, key: FunctionKey, now: float) -> FunctionStat:
        busy = self.in_flight > 0 or self.queued > 0
        idle_for = (
            None
            if self.last_completed is None
            else (0.0 if busy else round(now - self.last_completed, 3))
        )
        stat = FunctionStat(
            key[0],
            key[1],
            self.in_flight - self.queued,
            self.queued,
            self.arrivals,
            idle_for,
            self._take_outcomes(),
        )
        self.arrivals = 0
        return stat


class StatsReporter:
    """POSTs ``{gateway, functions: [...], cold: [...]}`` to the autoscaler's /stats."""

    def __init__(
        self,
        url: str,
        stats: Callable[[], Iterable[tuple[FunctionKey, FunctionStats]]],
        interval: float = 1.0,
    ) -> None:
        self.url = url.rstrip("/") + "/stats"
        self.gateway_id = uuid.uuid4().hex[:12]
        self._stats = stats
        self._interval = interval
        self._cold: dict[FunctionKey, float] = {}
        self._cold_send: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.failures = 0

    def cold(self, key: FunctionKey) -> None:
        """A request is waiting at a function with no replica: report now, not next tick,
        and not behind a report already on its way (the autoscaler answers each one after
        its scale writes)."""
        self._cold.setdefault(key, time.time())
        if self._cold_send is None or self._cold_send.done():
            self._cold_send = asyncio.get_running_loop().create_task(self._send_cold())

    async def _send_cold(self) -> None:
        # Cold ones that arrive while a report is on its way go right after it; a failed
        # send leaves them to the periodic retry rather than hammer an autoscaler that is down.
        while self._cold and await self._send():
            pass

    async def _send(self) -> bool:
        now = time.monotonic()
        cold, self._cold = self._cold, {}
        body = StatsReport(
            self.gateway_id,
            time.time(),
            tuple(stats.snapshot(key, now) for key, stats in self._stats()),
            tuple(ColdRequest(*key, at) for key, at in cold.items()),
        ).encode()
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        try:
            async with self._session.post(self.url, json=body) as reply:
                reply.raise_for_status()
            self.failures = 0
            return True
        except (aiohttp.ClientError, TimeoutError) as error:
            self.failures += 1
            for key, at in cold.items():  # a lost wake-up must be sent again
                self._cold.setdefault(key, at)
            if self.failures in (1, 10) or self.failures % 60 == 0:
                log.warning("cannot reach the autoscaler at %s: %s", self.url, error)
            return False

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._send()

    async def close(self) -> None:
        if self._cold_send is not None:
            self._cold_send.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cold_send
        if self._session is not None:
            await self._session.close()
