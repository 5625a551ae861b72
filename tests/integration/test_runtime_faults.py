"""Faults at invocation time: the caller gets a JSON error, the server keeps serving."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

CODE = Path(__file__).parent / "runtime_code"


async def _still_serves(http, runtime) -> None:
    async with http.post(f"{runtime.url}/_hanshu/invoke", json={}) as reply:
        assert reply.status in (200, 500), await reply.text()
    async with http.get(f"{runtime.admin_url}/healthz") as reply:
        assert reply.status == 200


async def test_user_exception_is_500_with_type_and_message_but_no_trace(runtime_factory, http):
    runtime = runtime_factory(CODE, "handlers.boom")
    async with http.get(f"{runtime.url}/", headers={"X-Request-Id": "r-1"}) as reply:
        assert reply.status == 500
        body = await reply.json()
    assert body == {
        "errorType": "ValueError",
        "errorMessage": "the answer is not 42",
        "requestId": "r-1",
    }
    await _still_serves(http, runtime)
    assert runtime.stop() == 0
    errors = [
        json.loads(line) for line in runtime.logs().splitlines() if '"the handler raised"' in line
    ]
    assert errors
    assert errors[0]["requestId"] == "r-1"
    assert any("the answer is not 42" in frame for frame in errors[0]["stackTrace"])


async def test_sync_timeout_is_504_and_the_server_keeps_serving(runtime_factory, http):
    runtime = runtime_factory(CODE, "handlers.slow", HANSHU_TIMEOUT="0.3")
    async with http.get(f"{runtime.url}/?seconds=3") as reply:
        assert reply.status == 504
        assert (await reply.json())["errorType"] == "FunctionTimeout"
    async with http.get(f"{runtime.url}/?seconds=0") as reply:
        assert reply.status == 200
        assert await reply.text() == "slept"
    async with http.get(f"{runtime.admin_url}/metrics") as reply:
        metrics = await reply.text()
    assert (
        'hanshu_runtime_invocations_total{function="test-fn",'
        'outcome="timeout",version="LATEST"} 1.0' in metrics
    )
    assert (
        'hanshu_runtime_abandoned_threads_total{function="test-fn",version="LATEST"} 1.0' in metrics
    )


async def test_async_timeout_cancels_the_handler(runtime_factory, http):
    runtime = runtime_factory(CODE, "handlers.async_slow", HANSHU_TIMEOUT="0.3")
    async with http.get(f"{runtime.url}/?seconds=5") as reply:
        assert reply.status == 504
    async with http.get(f"{runtime.url}/?seconds=0") as reply:
        assert reply.status == 200
    async with http.get(f"{runtime.admin_url}/metrics") as reply:
        metrics = await reply.text()
    assert 'hanshu_runtime_in_flight{function="test-fn",version="LATEST"} 0.0' in metrics
    assert (
        'hanshu_runtime_abandoned_threads_total{function="test-fn",version="LATEST"} 0.0' in metrics
    )


async def test_over_concurrency_is_429_with_retry_after(runtime_factory, http):
    runtime = runtime_factory(CODE, "handlers.async_slow", HANSHU_CONCURRENCY="2")

    async def call() -> tuple[int, str | None]:
        async with http.get(f"{runtime.url}/?seconds=1") as reply:
            return reply.status, reply.headers.get("Retry-After")

    results = await asyncio.gather(*(call() for _ in range(5)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 200, 429, 429, 429]
    assert all(retry == "1" for status, retry in results if status == 429)
    async with http.get(f"{runtime.url}/?seconds=0") as reply:
        assert reply.status == 200


async def test_wrong_reply_shape_is_502_invalid_response(runtime_factory, http):
    for handler, fragment in (("wrong_shape", "returned a set"), ("bad_status", "statusCode")):
        runtime = runtime_factory(CODE, f"handlers.{handler}")
        async with http.get(f"{runtime.url}/") as reply:
            assert reply.status == 502
            body = await reply.json()
            assert body["errorType"] == "InvalidResponse"
            assert fragment in body["errorMessage"]
        runtime.stop()


async def test_body_over_the_limit_is_413(runtime_factory, http):
    runtime = runtime_factory(CODE, "handlers.echo", HANSHU_MAX_BODY_BYTES="1000")
    async with http.post(f"{runtime.url}/", data=b"x" * 1001) as reply:
        assert reply.status == 413
        assert (await reply.json())["errorType"] == "RequestTooLarge"

    async def chunks():
        for _ in range(20):
            yield b"y" * 100

    async with http.post(f"{runtime.url}/", data=chunks()) as reply:  # chunked, no length
        assert reply.status == 413
    async with http.post(f"{runtime.url}/", data=b"x" * 1000) as reply:
        assert reply.status == 200


async def test_blocking_sync_handlers_still_run_side_by_side(runtime_factory, http):
    import time

    runtime = runtime_factory(CODE, "handlers.slow", HANSHU_CONCURRENCY="50")

    async def call() -> int:
        async with http.get(f"{runtime.url}/?seconds=0.5") as reply:
            return reply.status

    started = time.monotonic()
    statuses = await asyncio.gather(*(call() for _ in range(20)))
    elapsed = time.monotonic() - started
    assert statuses == [200] * 20
    # Four threads at once, more for calls waiting behind blocked ones: not 20 x 0.5 s / 4.
    assert elapsed < 1.5, f"20 blocking calls took {elapsed:.2f}s"
