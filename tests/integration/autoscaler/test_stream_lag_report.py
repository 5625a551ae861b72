"""A stream Trigger's lag, as the dispatchers report it (one reporter id per Trigger,
posted to the autoscaler's /stats as a gateway's report is), reaches the autoscaler as
queued requests: the lag wakes and scales its Function."""

from __future__ import annotations

import aiohttp
from hanshu_autoscaler import AutoscalerService
from hanshu_dispatcher.stream_readers import lag_report

from tests.support.servers import serving


class Scaler:
    def __init__(self) -> None:
        self.replicas: dict[tuple[str, str], int] = {}

    def current_replicas(self, key: tuple[str, str]) -> int | None:
        return self.replicas.get(key)

    async def set_replicas(self, key: tuple[str, str], replicas: int) -> None:
        self.replicas[key] = replicas


async def test_the_lag_reaches_the_autoscaler_as_queued_requests():
    service = AutoscalerService(Scaler(), lambda: [])
    report = lag_report("ns1", "orders", "hello", 7)
    async with (
        serving(service.app()) as port,
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{port}/stats", json=report.encode()) as reply,
    ):
        assert reply.status == 204
    assert service.observation(("ns1", "hello")).queued == 7


async def test_two_triggers_on_one_function_are_summed_not_overwritten():
    service = AutoscalerService(Scaler(), lambda: [])
    async with serving(service.app()) as port, aiohttp.ClientSession() as http:
        for trigger, lag in (("orders", 3), ("refunds", 4)):
            report = lag_report("ns1", trigger, "hello", lag).encode()
            async with http.post(f"http://127.0.0.1:{port}/stats", json=report) as reply:
                assert reply.status == 204
    assert service.observation(("ns1", "hello")).queued == 7
