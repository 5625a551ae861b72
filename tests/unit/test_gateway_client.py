"""The gateway's internal paths and the one client of its internal port, against a stand-in
gateway on loopback that routes with the same path constants and records what it got."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping

import aiohttp
import pytest
from aiohttp import web
from hanshu_api import INTERNAL_TOKEN_HEADER
from hanshu_api.gateway_paths import (
    DISPATCH_ROUTE,
    ENQUEUE_ROUTE,
    INVOKE_ROUTE,
    dispatch_path,
    enqueue_path,
    events_path,
    invocation_path,
    invoke_path,
    job_path,
)
from hanshu_api.invocations import HTTP_GATEWAY_ERROR
from hanshu_dispatcher.gateway_client import InternalGateway
from multidict import CIMultiDict

from tests.support.servers import free_port


def test_the_paths_are_built_from_their_routes() -> None:
    assert invoke_path("shop", "checkout") == "/_hanshu/invoke/shop/checkout"
    assert enqueue_path("shop", "checkout") == "/_hanshu/enqueue/shop/checkout"
    assert dispatch_path("shop", "checkout") == "/_hanshu/dispatch/shop/checkout"
    assert events_path("shop", "uploads") == "/_hanshu/events/shop/uploads"
    assert invocation_path("ab12") == "/_hanshu/invocations/ab12"
    assert job_path("ab12") == "/_hanshu/jobs/ab12"


Seen = list[tuple[str, str, Mapping[str, str], bytes]]


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[str, Seen]]:
    seen: Seen = []

    async def record(request: web.Request) -> web.Response:
        headers = CIMultiDict(request.headers)  # as a server reads them: any case
        seen.append((request.method, request.path, headers, await request.read()))
        if request.match_info["function"] == "cold":
            return web.json_response(
                {"errorType": "FunctionNotReady"},
                status=503,
                headers={HTTP_GATEWAY_ERROR: "FunctionNotReady", "Retry-After": "2"},
            )
        status = 202 if "/enqueue/" in request.path else 200
        return web.Response(status=status, body=b"done")

    app = web.Application()
    app.router.add_post(INVOKE_ROUTE, record)
    app.router.add_post(ENQUEUE_ROUTE, record)
    app.router.add_route("*", DISPATCH_ROUTE, record)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/", seen
    finally:
        await runner.cleanup()


async def test_every_call_carries_the_token_to_its_path(gateway: tuple[str, Seen]) -> None:
    url, seen = gateway
    async with aiohttp.ClientSession() as session:
        client = InternalGateway(session, url, "s3cret")
        invoked = await client.invoke("shop", "checkout", {"n": 1}, time_limit=5, request_id="r")
        stored = await client.enqueue(
            "shop", "checkout", b'{"n": 2}', time_limit=5, idempotency_key="k-1"
        )
        dispatched = await client.dispatch(
            "shop", "checkout", "PUT", [("X-Hanshu-Target", "/x?y=1")], b"raw", time_limit=5
        )
    assert (invoked.status, stored.status, dispatched.status) == (200, 202, 200)
    assert invoked.body == b"done"
    assert [(method, path) for method, path, _, _ in seen] == [
        ("POST", "/_hanshu/invoke/shop/checkout"),
        ("POST", "/_hanshu/enqueue/shop/checkout"),
        ("PUT", "/_hanshu/dispatch/shop/checkout"),
    ]
    assert all(headers[INTERNAL_TOKEN_HEADER] == "s3cret" for _, _, headers, _ in seen)
    assert json.loads(seen[0][3]) == {"n": 1}
    assert seen[0][2]["X-Request-Id"] == "r"
    assert seen[1][2]["Idempotency-Key"] == "k-1"
    assert seen[1][2]["Content-Type"] == "application/json"
    assert seen[2][2]["X-Hanshu-Target"] == "/x?y=1"
    assert seen[2][3] == b"raw"


async def test_without_a_token_no_token_header_is_sent(gateway: tuple[str, Seen]) -> None:
    url, seen = gateway
    async with aiohttp.ClientSession() as session:
        await InternalGateway(session, url).invoke("shop", "checkout", {}, time_limit=5)
    assert INTERNAL_TOKEN_HEADER not in seen[0][2]


async def test_the_gateway_s_own_refusal_is_told_from_a_function_s_reply(
    gateway: tuple[str, Seen],
) -> None:
    url, _ = gateway
    async with aiohttp.ClientSession() as session:
        client = InternalGateway(session, url)
        refused = await client.invoke("shop", "cold", {}, time_limit=5)
        answered = await client.invoke("shop", "checkout", {}, time_limit=5)
    assert refused.status == 503
    assert refused.gateway_error == "FunctionNotReady"
    assert refused.headers["retry-after"] == "2"  # read whatever the case
    assert answered.gateway_error is None


async def test_a_gateway_that_is_not_there_raises() -> None:
    async with aiohttp.ClientSession() as session:
        client = InternalGateway(session, f"http://127.0.0.1:{free_port()}")
        with pytest.raises(aiohttp.ClientError):
            await client.invoke("shop", "checkout", {}, time_limit=5)
