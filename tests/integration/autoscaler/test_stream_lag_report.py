"""The operator's stream Triggers report their lag to the autoscaler, now its own process,
over HTTP as a gateway reports: the autoscaler reads the lag as queued requests, and an
autoscaler that is down costs the consumer nothing but a lost report."""

from __future__ import annotations

import aiohttp
from hanshu_autoscaler import AutoscalerService
from hanshu_operator.stream_triggers import lag_report, send_report

from tests.support.servers import free_port, serving


class Scaler:
    def __init__(self) -> None:
        self.replicas: dict[tuple[str, str], int] = {}

    def current_replicas(self, key: tuple[str, str]) -> int | None:
        return self.replicas.get(key)

    async def set_replicas(self, key: tuple[str, str], replicas: int) -> None:
        self.replicas[key] = replicas


async def test_the_lag_reaches_the_autoscaler_as_queued_requests():
    service = AutoscalerService(Scaler(), lambda: [])
    async with serving(service.app()) as port, aiohttp.ClientSession() as http:
        await send_report(http, f"http://127.0.0.1:{port}", lag_report("ns1", "orders", "hello", 7))
    assert service.observation(("ns1", "hello")).queued == 7


async def test_an_autoscaler_that_is_down_is_only_a_lost_report():
    async with aiohttp.ClientSession() as http:
        # Nothing listens there: no exception reaches the consumer.
        await send_report(http, f"http://127.0.0.1:{free_port()}", lag_report("ns1", "o", "f", 1))
