"""A gateway that starts beside 10,000 Functions with HTTP Triggers (and their
EndpointSlices) lists them, judges every route once, keeps its event loop answering while
it does, and serves a request within seconds, from the right owner of a contested route."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devtools.kube_emulator import declare_resources, preload_http_functions, write_kubeconfig
from tests.support.kube_gateway import NS, running_gateway

CODE = Path(__file__).resolve().parent.parent / "runtime_code"
FUNCTIONS = 10_000
CONTESTED = 100  # every so many Triggers, a newer rival claims the same route


async def _healthz(http: aiohttp.ClientSession, internal: str) -> dict[str, Any]:
    async with http.get(f"{internal}/healthz", timeout=aiohttp.ClientTimeout(total=5)) as reply:
        body: dict[str, Any] = await reply.json()
        return body


async def _status(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=10)) as reply:
        await reply.read()
        return reply.status


# It bounds the event loop's stalls in wall-clock time: other tests beside it would stretch them.
@pytest.mark.alone
@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_ten_thousand_routes_load_without_blocking_and_serve_their_owners(
    kmock: Any, tmp_path: Path, runtime_factory: Any
) -> None:
    runtime = runtime_factory(CODE, "handlers.echo")
    declare_resources(kmock)
    preload_http_functions(kmock, NS, FUNCTIONS, ready_port=runtime.port, contested_every=CONTESTED)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(kmock.url), NS)
    started = time.monotonic()
    async with (
        running_gateway(kubeconfig, HANSHU_WATCH_NAMESPACES=NS, HANSHU_COLD_START_TIMEOUT="2") as (
            url,
            internal,
        ),
        aiohttp.ClientSession() as http,
    ):
        # The liveness check answers all along: the lists are worked through in slices.
        slowest_health = 0.0
        while True:
            asked = time.monotonic()
            await _healthz(http, internal)
            slowest_health = max(slowest_health, time.monotonic() - asked)
            async with http.get(f"{internal}/readyz") as reply:
                if reply.status == 200:
                    break
            assert time.monotonic() - started < 120, "the routes never finished loading"
        ready_after = time.monotonic() - started
        lag = (await _healthz(http, internal))["eventLoopLag"]

        # A contested route goes to its oldest claimant's Function (the one with a ready
        # replica); the newer rival's Function has none, so the wrong owner would be a 503.
        assert await _status(http, f"{url}/fn/{CONTESTED * 3}/x") == 200
        assert await _status(http, f"{url}/fn/0") == 200
        # An uncontested route at zero replicas is routed to its own Function: cold, and
        # nothing wakes it here (no autoscaler), so 503 after the cold-start timeout.
        assert await _status(http, f"{url}/fn/{FUNCTIONS - 1}") == 503
        assert await _status(http, f"{url}/nowhere") == 404

    # Bounds far above what this takes (a few seconds on a 2-core machine) and far below
    # the minutes a re-judging of every route per Trigger took, which blocked the loop.
    assert ready_after < 90, f"ready after {ready_after:.1f}s"
    assert slowest_health < 2.0, f"a liveness check took {slowest_health:.2f}s"
    assert lag["maxSeconds"] < 1.0, f"the event loop stalled for {lag['maxSeconds']}s"
