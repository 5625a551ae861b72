"""A replica that took a request and never answers: the caller gets 504 FunctionTimeout once
the Function's timeout has passed, and the request is not sent to another replica (it may
be running there still: sending it again could run it twice)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from hanshu_api.models import parse_function_spec, parse_trigger_spec
from hanshu_api.platform import Endpoint
from hanshu_gateway.catalog import Catalog, KnownTrigger
from hanshu_gateway.pipeline import Gateway, GatewayConfig

from tests.support.servers import free_port, serving


@pytest.fixture
async def silent_replicas() -> AsyncIterator[tuple[list[int], list[str]]]:
    """Two replicas that read a request and then say nothing (a handler stuck past its
    deadline in a runtime that cannot stop it)."""
    taken: list[str] = []
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        taken.append(request.path)
        await release.wait()
        return web.Response(text="too late")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hang)
    async with serving(app) as first, serving(app) as second:
        yield [first, second], taken
        release.set()


async def test_a_replica_silent_past_the_timeout_is_a_504_and_the_call_is_not_repeated(
    silent_replicas,
):
    ports, taken = silent_replicas
    key = ("default", "stuck")
    catalog = Catalog(10, lambda namespace, trigger: None)
    spec = {"handler": "a.b", "code": {"image": "x"}, "timeoutSeconds": 1}
    catalog.set_function(key, parse_function_spec(spec))
    catalog.set_endpoints(key, [Endpoint("127.0.0.1", port) for port in ports])
    route = {"functionRef": {"name": "stuck"}, "http": {"path": "/"}}
    catalog.set_triggers([KnownTrigger("default", "stuck", None, parse_trigger_spec(route))])
    port = free_port()
    config = GatewayConfig(
        host="127.0.0.1", port=port, internal_port=free_port(), cold_start_timeout=20
    )
    gateway = Gateway(config, catalog)
    await gateway.start()
    try:
        started = time.monotonic()
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/work") as reply,
        ):
            assert reply.status == 504
            assert (await reply.json())["errorType"] == "FunctionTimeout"
        # The Function's timeout and the gateway's second of grace, not the cold start's 20.
        assert time.monotonic() - started < 10
        assert taken == ["/work"]  # one replica took it; none was asked again
    finally:
        await gateway.close()
