"""When a watch of the Kubernetes API ends: resume from the last resourceVersion, or list
again (only when the server says the position is gone), and how long to wait first. And the
client's watch stream itself, against a real server on loopback."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web
from hanshu_api.kube import KubeClient, KubeConfig, WatchIdle
from hanshu_api.settings import DEFAULT_FUNCTION_RESOURCES
from hanshu_gateway.kube_gateway import (
    DEFAULT_WATCH_IDLE_SECONDS,
    MAX_BACKOFF_SECONDS,
    NextWatch,
    WatchEnd,
    WatchOutcome,
    default_resources_from_env,
    next_watch,
    watch_idle_seconds_from_env,
    watch_timeout_seconds,
)
from hanshu_gateway.pipeline import ConfigError

from tests.support.servers import serving


@pytest.mark.parametrize("ended", [WatchEnd.CLOSED, WatchEnd.IDLE, WatchEnd.BROKEN])
def test_a_known_position_is_resumed_however_the_stream_ended(ended):
    step = next_watch(WatchOutcome(ended, "1234", progressed=True), failures=0)
    assert step == NextWatch(relist=False, delay=0.0, failures=0)


def test_gone_lists_again_at_once():
    assert next_watch(WatchOutcome(WatchEnd.GONE, "1234", True), 0) == NextWatch(True, 0.0, 0)


def test_no_position_yet_lists():
    assert next_watch(WatchOutcome(WatchEnd.BROKEN, None, False), 0).relist
    assert next_watch(WatchOutcome(WatchEnd.CLOSED, "", True), 0).relist


def test_a_silent_stream_is_resumed_at_once():
    # Idling out took the whole idle bound already: no tight loop to guard against.
    step = next_watch(WatchOutcome(WatchEnd.IDLE, "7", progressed=False), failures=3)
    assert step == NextWatch(relist=False, delay=0.0, failures=0)


def test_attempts_that_end_early_with_nothing_back_off_exponentially():
    failures, delays = 0, []
    for _ in range(9):
        step = next_watch(WatchOutcome(WatchEnd.BROKEN, "7", progressed=False), failures)
        assert not step.relist  # a refused connection does not lose the position
        failures = step.failures
        delays.append(step.delay)
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert delays[-1] == MAX_BACKOFF_SECONDS
    # Anything arriving resets the backoff.
    assert next_watch(WatchOutcome(WatchEnd.CLOSED, "8", True), failures).failures == 0


def test_repeated_gone_without_progress_backs_off_too():
    step = next_watch(WatchOutcome(WatchEnd.GONE, "7", progressed=False), failures=2)
    assert step.relist
    assert step.delay == 2.0


def test_server_side_timeout_is_spread_like_client_gos():
    assert watch_timeout_seconds(0.0) == 300
    assert watch_timeout_seconds(0.999) == 599


def test_idle_bound_from_the_environment():
    assert watch_idle_seconds_from_env({}) == DEFAULT_WATCH_IDLE_SECONDS
    assert watch_timeout_seconds(0.0) > DEFAULT_WATCH_IDLE_SECONDS  # it must matter
    assert watch_idle_seconds_from_env({"HANSHU_WATCH_IDLE_SECONDS": "2.5"}) == 2.5
    for bad in ("0", "-1", "soon", "nan"):
        with pytest.raises(ConfigError, match="HANSHU_WATCH_IDLE_SECONDS"):
            watch_idle_seconds_from_env({"HANSHU_WATCH_IDLE_SECONDS": bad})


def test_default_resources_from_the_environment():
    # Unset: the operator's defaults, so a Function is metered for what its pods get.
    assert default_resources_from_env({}) == DEFAULT_FUNCTION_RESOURCES
    value = '{"limits": {"memory": "512Mi"}}'
    assert default_resources_from_env({"HANSHU_DEFAULT_RESOURCES": value}) == {
        "limits": {"memory": "512Mi"}
    }
    for bad in ("{limits", "[]", '"512Mi"', '{"limits": {"memory": "lots"}}'):
        with pytest.raises(ConfigError, match="HANSHU_DEFAULT_RESOURCES"):
            default_resources_from_env({"HANSHU_DEFAULT_RESOURCES": bad})


async def _stream(request: web.Request, *events: dict[str, object]) -> web.StreamResponse:
    reply = web.StreamResponse(headers={"Content-Type": "application/json"})
    await reply.prepare(request)
    for event in events:
        await reply.write(json.dumps(event).encode() + b"\n")
    return reply


async def test_watch_reads_events_longer_than_aiohttp_lines():
    # A Function with 1 MB of inline code is one event on one line.
    code = "x" * 1_000_000
    seen: list[dict[str, str]] = []

    async def watch(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.query))
        big = {"metadata": {"name": "big", "resourceVersion": "5"}, "spec": {"code": code}}
        return await _stream(
            request,
            {"type": "ADDED", "object": big},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "6"}}},
        )

    app = web.Application()
    app.router.add_get("/api/v1/configmaps", watch)
    async with serving(app) as port:
        kube = KubeClient(KubeConfig(server=f"http://127.0.0.1:{port}"))
        try:
            events = [
                e
                async for e in kube.watch(
                    "/api/v1/configmaps", None, "4", timeout_seconds=321, idle_timeout=5
                )
            ]
        finally:
            await kube.close()
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[0]["object"]["spec"]["code"] == code
    assert seen[0]["resourceVersion"] == "4"
    assert seen[0]["timeoutSeconds"] == "321"
    assert seen[0]["allowWatchBookmarks"] == "true"


async def test_a_silent_watch_raises_watch_idle_within_its_bound():
    hang = asyncio.Event()

    async def watch(request: web.Request) -> web.StreamResponse:
        reply = await _stream(request, {"type": "BOOKMARK", "object": {"metadata": {}}})
        await hang.wait()  # headers and one bookmark sent; then nothing, never closed
        return reply

    app = web.Application()
    app.router.add_get("/api/v1/configmaps", watch)
    async with serving(app) as port:
        kube = KubeClient(KubeConfig(server=f"http://127.0.0.1:{port}"))
        started = time.monotonic()
        try:
            with pytest.raises(WatchIdle):
                async for _ in kube.watch("/api/v1/configmaps", idle_timeout=0.3):
                    pass
        finally:
            hang.set()
            await kube.close()
    assert time.monotonic() - started < 3
