"""Readiness, metrics and draining on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from tests.support.helpers import eventually

CODE = Path(__file__).parent / "runtime_code"


async def test_health_ready_and_metrics(runtime_factory, http):
    runtime = runtime_factory(CODE, "handlers.echo")
    async with http.get(f"{runtime.admin_url}/healthz") as reply:
        assert reply.status == 200
    async with http.get(f"{runtime.admin_url}/readyz") as reply:
        assert reply.status == 200
        assert (await reply.json())["phase"] == "ready"
    async with http.get(f"{runtime.url}/") as reply:
        assert reply.status == 200
    async with http.get(f"{runtime.admin_url}/metrics") as reply:
        text = await reply.text()
    assert (
        'hanshu_runtime_invocations_total{function="test-fn",'
        'outcome="success",version="LATEST"} 1.0' in text
    )
    assert (
        'hanshu_runtime_invocation_duration_seconds_count{function="test-fn",version="LATEST"} 1.0'
        in text
    )
    assert "hanshu_runtime_initialization_seconds" in text
    assert 'hanshu_runtime_in_flight{function="test-fn",version="LATEST"} 0.0' in text


async def test_not_ready_until_the_initializer_finished(runtime_factory, http, tmp_path):
    (tmp_path / "slow_init.py").write_text(
        "import time\n\ndef init(context):\n    time.sleep(1.5)\n\n"
        "def handler(event, context):\n    return 'ok'\n"
    )
    runtime = runtime_factory(
        tmp_path, "slow_init.handler", ready=False, HANSHU_INITIALIZER="slow_init.init"
    )
    deadline = time.monotonic() + 10
    saw_not_ready = False
    while time.monotonic() < deadline:
        try:
            async with http.get(f"{runtime.admin_url}/readyz") as reply:
                if reply.status == 503:
                    saw_not_ready = True
                    assert (await reply.json())["phase"] == "starting"
                elif reply.status == 200:
                    break
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    assert saw_not_ready, "readyz should answer 503 while the initializer runs"
    async with http.get(f"{runtime.url}/") as reply:
        assert await reply.text() == "ok"


async def test_sigterm_drains_in_flight_requests_then_exits_zero(runtime_factory, http):
    runtime = runtime_factory(CODE, "handlers.slow", HANSHU_DRAIN_SECONDS="10")
    in_flight = asyncio.create_task(http.get(f"{runtime.url}/?seconds=1.5"))
    # Wait until the runtime counts the request as in flight before signalling.
    for _ in range(200):
        async with http.get(f"{runtime.admin_url}/metrics") as reply:
            if (
                'hanshu_runtime_in_flight{function="test-fn",version="LATEST"} 1.0'
                in await reply.text()
            ):
                break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the request never became in flight")
    runtime.process.send_signal(signal.SIGTERM)
    for _ in range(200):
        async with http.get(f"{runtime.admin_url}/readyz") as reply:
            if reply.status == 503:
                assert (await reply.json())["phase"] == "draining"
                break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("readyz never dropped after SIGTERM")
    async with aiohttp.ClientSession() as fresh:  # a new connection is refused while draining
        with pytest.raises(aiohttp.ClientConnectionError):
            async with fresh.get(f"{runtime.url}/?seconds=0"):
                pass
    reply = await in_flight
    assert reply.status == 200
    assert await reply.text() == "slept"
    reply.release()
    assert await asyncio.to_thread(runtime.process.wait, 15) == 0


async def test_drain_gives_up_after_drain_seconds(runtime_factory, http):
    runtime = runtime_factory(
        CODE, "handlers.slow", HANSHU_DRAIN_SECONDS="0.5", HANSHU_TIMEOUT="60"
    )
    task = asyncio.create_task(http.get(f"{runtime.url}/?seconds=30"))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    runtime.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(runtime.process.wait, 15) == 0
    assert time.monotonic() - started < 10
    task.cancel()


async def test_a_draining_runtime_marks_its_503_with_a_header(runtime_factory, http):
    runtime = runtime_factory(CODE, "handlers.slow", HANSHU_DRAIN_SECONDS="10")
    # One connection, kept alive: the only way to reach a runtime that stopped listening.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as kept:
        async with kept.get(f"{runtime.url}/?seconds=0") as reply:
            assert reply.status == 200
            assert "X-Hanshu-Draining" not in reply.headers
            await reply.read()
        in_flight = asyncio.create_task(http.get(f"{runtime.url}/?seconds=3"))

        async def metric_in_flight() -> bool:
            async with http.get(f"{runtime.admin_url}/metrics") as metrics:
                return (
                    'hanshu_runtime_in_flight{function="test-fn",version="LATEST"} 1.0'
                    in await metrics.text()
                )

        async def draining() -> bool:
            async with http.get(f"{runtime.admin_url}/readyz") as ready:
                return ready.status == 503

        await eventually(metric_in_flight, message="a request in flight")
        runtime.process.send_signal(signal.SIGTERM)
        await eventually(draining, message="readiness dropped")
        async with kept.get(f"{runtime.url}/?seconds=0") as reply:
            assert reply.status == 503
            assert reply.headers["X-Hanshu-Draining"] == "true"
            assert (await reply.json())["errorType"] == "Draining"
    reply = await in_flight
    assert reply.status == 200  # the request in flight still finished
    reply.release()
