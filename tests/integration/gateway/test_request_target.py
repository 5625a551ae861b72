"""The request target through the gateway, sent as raw bytes (an HTTP client would normalise
it first): what is refused and with which status, what the function sees, and Hanshu's own
paths and signals kept away from callers."""

from __future__ import annotations

import asyncio
import json
import signal
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hanshu_api.models import parse_function_spec, parse_trigger_spec
from hanshu_api.platform import Endpoint
from hanshu_gateway.catalog import Catalog, KnownTrigger
from hanshu_gateway.pipeline import Gateway, GatewayConfig
from hanshu_gateway.upstream import UpstreamPool
from multidict import CIMultiDict

from tests.support.dev_platform import HANDLERS, function, trigger
from tests.support.helpers import eventually
from tests.support.servers import free_port, serving

CODE = HANDLERS + textwrap.dedent("""

    def route(event, context):
        if event["path"].endswith("/own-503"):
            # A function's own 503 that happens to mention Draining is not the runtime's.
            return {"statusCode": 503, "headers": {"Content-Type": "application/json"},
                    "body": '{"errorType": "Draining"}'}
        if event["path"].endswith("/plain"):
            return "plain"  # no headers echoed: any bytes a caller sent are fine
        return echo(event, context)
""")
# No allowHeaders: a preflight's Access-Control-Request-Headers is echoed back.
CORS = {"allowOrigins": ["https://app.example"]}


@dataclass
class Reply:
    status: int
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def exchange(port: int, request: bytes) -> Reply:
    """Send ``request`` byte for byte and read one reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(30):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("utf-8", "replace").split("\r\n")
            headers: CIMultiDict[str] = CIMultiDict()
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers.add(name, value.strip())
            length = headers.get("Content-Length")
            body = await (reader.readexactly(int(length)) if length else reader.read())
    finally:
        writer.close()
    return Reply(int(lines[0].split(" ")[1]), headers, body)


def get(target: bytes, *headers: bytes, method: bytes = b"GET", host: bytes = b"gw.test") -> bytes:
    fields = b"".join(header + b"\r\n" for header in (b"Host: " + host, *headers))
    return method + b" " + target + b" HTTP/1.1\r\n" + fields + b"Connection: close\r\n\r\n"


def assert_error(reply: Reply, status: int, error_type: str | None = None) -> dict[str, str]:
    assert reply.status == status, (reply.status, reply.body)
    assert reply.headers["Content-Type"].startswith("application/json"), reply.body
    body = reply.json()
    assert set(body) == {"errorType", "errorMessage", "requestId"}, body
    assert body["requestId"] == reply.headers["X-Request-Id"]
    if error_type is not None:
        assert body["errorType"] == error_type, body
    return body


@pytest.fixture
async def platform(platform_factory):
    started = platform_factory([
        function(
            "echo",
            handler="handlers.route",
            code={"inline": {"handlers.py": CODE}},
            scaling={"minReplicas": 1, "scaleToZeroGracePeriod": "60s"},
        ),
        trigger("echo", "echo", path="/echo"),
        trigger("shop", "echo", path="/shop", stripPrefix=True),
        trigger("root", "echo", path="/"),
        trigger("cors", "echo", path="/cors", cors=CORS),
    ])  # fmt: skip
    await eventually(lambda: started.ready_replicas("echo") == 1, message="a ready replica")
    return started


async def seen(platform, target: bytes, *headers: bytes) -> dict[str, Any]:
    """What the function received for ``target``."""
    reply = await exchange(platform.port, get(target, *headers))
    assert reply.status == 200, (reply.status, reply.body)
    return reply.json()  # type: ignore[no-any-return]


async def test_an_encoded_control_character_in_the_path_is_a_400(platform):
    for target in (
        b"/echo/x%0d%0aX-Injected:%201",  # would forge a header on the hop to the replica
        b"/echo/x%0aGET%20/other",
        b"/echo/x%00",
        b"/shop/x%09y",
        b"/x%7f",
        b"/x%1b[31m",
    ):
        assert_error(await exchange(platform.port, get(target)), 400, "InvalidPath")
    # An encoded newline in the query is data (a text field's line break), passed as sent.
    assert (await seen(platform, b"/echo/q?text=a%0d%0ab"))["query"] == {"text": "a\r\nb"}


async def test_what_the_http_parser_refuses_is_a_json_400(platform):
    for request in (
        b"GARBAGE\r\n\r\n",
        get(b"/echo/a\x00b"),
        get(b"/echo/a\tb"),
        get(b"/echo/\xe4\xbd\xa0"),  # raw bytes outside ASCII in the request line
        get(b"/echo/a", b"X-Folded: a", b" b"),
        get(b"/echo/a", b"X-Split: a\rX-Injected: 1"),
        b"GET /echo/a HTTP/1.1\r\n\r\n",  # no Host
    ):
        assert_error(await exchange(platform.port, request), 400)


async def test_a_non_ascii_path_reaches_the_function_decoded_once(platform):
    assert (await seen(platform, b"/echo/%E4%BD%A0"))["path"] == "/echo/\u4f60"
    assert (await seen(platform, b"/echo/%252e"))["path"] == "/echo/%2e"
    assert (await seen(platform, b"/shop/%E4%BD%A0?q=%E4%BD%A0"))["path"] == "/\u4f60"
    assert (await seen(platform, b"/echo/a", "X-Name: 你好".encode()))["headers"][
        "X-Name"
    ] == "你好"
    # Not text once decoded: the path cannot be routed or shown to the function.
    assert_error(await exchange(platform.port, get(b"/echo/%FF")), 400, "InvalidPath")


async def test_the_prefix_is_matched_decoded_and_stripped_from_the_raw_target(platform):
    stripped = await seen(platform, b"/sh%6Fp/a%252Fb?x=1")
    assert stripped["path"] == "/a%2Fb"  # the prefix's segment went; the rest as sent
    assert stripped["query"] == {"x": "1"}
    assert stripped["headers"]["X-Forwarded-Prefix"] == "/shop"
    # An encoded slash is data inside a segment, not a separator: not under /shop.
    assert (await seen(platform, b"/shop%2Fa"))["path"] == "/shop/a"


async def test_a_callers_forwarded_prefix_never_reaches_the_function(platform):
    # The prefix decides where a web app builds its URLs: only the gateway may set it.
    forged = b"X-Forwarded-Prefix: /evil"
    assert "X-Forwarded-Prefix" not in (await seen(platform, b"/echo/a", forged))["headers"]
    stripped = await seen(platform, b"/shop/a", forged)
    assert stripped["headers"]["X-Forwarded-Prefix"] == "/shop"


async def test_dot_segments_are_resolved_before_routing(platform):
    assert (await seen(platform, b"/shop/a/../b"))["path"] == "/b"
    assert (await seen(platform, b"/shop/%2e%2e/echo/x"))["path"] == "/echo/x"  # routed on /echo
    assert (await seen(platform, b"/shop/./a/."))["path"] == "/a/"
    for target in (b"/shop/../..", b"/..", b"/shop/..%2F..%2F_hanshu%2Finvoke", b"/x/%2e%2E%2f"):
        assert_error(await exchange(platform.port, get(target)), 400, "InvalidPath")


async def test_public_requests_never_reach_the_reserved_hanshu_paths(platform):
    body = b"Content-Type: application/json", b"Content-Length: 2"
    for target in (
        b"/_hanshu/invoke",
        b"/_hanshu",
        b"/shop/_hanshu/invoke",
        b"/shop/_HANSHU/invoke",
        b"/shop/_hanshu%2Finvoke",
        b"/shop/%5Fhanshu/invoke",
        b"/shop//_hanshu/invoke",
        b"/echo/../_hanshu/invoke",
    ):
        request = get(target, *body, method=b"POST") + b"{}"
        assert_error(await exchange(platform.port, request), 404, "NoRoute")
    assert (await seen(platform, b"/shop/_hanshux"))["path"] == "/_hanshux"


async def test_an_oversized_target_is_a_414_and_oversized_headers_a_431(platform):
    assert_error(await exchange(platform.port, get(b"/echo/" + b"a" * 9000)), 414)
    assert_error(await exchange(platform.port, get(b"/echo/a", b"X-Big: " + b"a" * 20000)), 431)
    many = [b"X-Many-%d: a" % index for index in range(200)]
    assert_error(await exchange(platform.port, get(b"/echo/a", *many)), 431)


async def test_absolute_form_fragment_and_other_target_forms(platform):
    absolute = await seen(platform, b"http://elsewhere.example/echo/a?x=1#part")
    assert absolute["path"] == "/echo/a"
    assert absolute["query"] == {"x": "1"}
    assert absolute["headers"]["X-Forwarded-Host"] == "elsewhere.example"  # RFC 9112 3.2.2
    assert (await seen(platform, b"http://elsewhere.example"))["path"] == "/"
    assert (await seen(platform, b"/echo/a#part"))["path"] == "/echo/a"
    assert_error(await exchange(platform.port, get(b"*", method=b"OPTIONS")), 400)
    assert_error(await exchange(platform.port, get(b"gw.test:443", method=b"CONNECT")), 400)
    # A host in the target that cannot be decoded: a 400, not a reply that never comes.
    assert_error(await exchange(platform.port, get(b"http://xn--zz/echo")), 400, "InvalidHost")


async def test_a_host_or_request_id_that_is_not_ascii_is_never_a_500(platform):
    not_utf8 = get(b"/echo/a", host=b"\xff\xfe")
    assert_error(await exchange(platform.port, not_utf8), 400, "InvalidHost")
    reply = await exchange(platform.port, get(b"/echo/a", "X-Request-Id: 请求".encode()))
    assert reply.status == 200
    assert reply.headers["X-Request-Id"].isascii()  # a fresh id instead of the caller's
    # Header values a reply would echo (CORS) that are not UTF-8 count as not sent.
    preflight = get(
        b"/cors/plain",
        b"Origin: https://\xff.example",
        b"Access-Control-Request-Method: GET",
        b"Access-Control-Request-Headers: X-\xff",
        method=b"OPTIONS",
    )
    assert (await exchange(platform.port, preflight)).body == b"plain"  # not a preflight
    allowed = get(
        b"/cors",
        b"Origin: https://app.example",
        b"Access-Control-Request-Method: GET",
        b"Access-Control-Request-Headers: X-\xff",
        method=b"OPTIONS",
    )
    reply = await exchange(platform.port, allowed)
    assert reply.status == 204
    assert "Access-Control-Allow-Headers" not in reply.headers


async def test_a_functions_own_503_reaches_the_caller_unretried(platform):
    async with asyncio.timeout(10):  # retried as if draining, it would wait out the queue
        reply = await exchange(platform.port, get(b"/echo/own-503"))
    assert reply.status == 503
    assert reply.json() == {"errorType": "Draining"}


# -- Hanshu's draining signal, with the gateway in this process --------------------------

RUNTIME_CODE = Path(__file__).resolve().parent.parent / "runtime_code"


@pytest.fixture
async def gateway_for() -> AsyncIterator[Any]:
    gateways: list[Gateway] = []

    async def start(*ports: int) -> int:
        key = ("default", "slow")
        catalog = Catalog(10, lambda namespace, trigger: None)
        spec = {"handler": "handlers.slow", "code": {"image": "runtime"}}
        catalog.set_function(key, parse_function_spec(spec))
        catalog.set_endpoints(key, [Endpoint("127.0.0.1", port) for port in ports])
        route = {"functionRef": {"name": "slow"}, "http": {"path": "/"}}
        catalog.set_triggers([KnownTrigger("default", "web", None, parse_trigger_spec(route))])
        port = free_port()
        config = GatewayConfig(host="127.0.0.1", port=port, internal_port=free_port())
        gateway = Gateway(config, catalog)
        await gateway.start()
        gateways.append(gateway)
        return port

    yield start
    for gateway in gateways:
        await gateway.close()


async def test_the_draining_signal_never_reaches_a_caller(gateway_for):
    async def claims_draining(request: web.Request) -> web.Response:
        # Not our runtime (which strips it from what a function returns): the gateway too
        # must never pass Hanshu's own signal on.
        return web.Response(text="fine", headers={"X-Hanshu-Draining": "true"})

    app = web.Application()
    app.router.add_get("/", claims_draining)
    async with serving(app) as replica:
        reply = await exchange(await gateway_for(replica), get(b"/"))
    assert reply.status == 200
    assert reply.body == b"fine"
    assert "X-Hanshu-Draining" not in reply.headers


async def _metric(http, runtime, outcome: str) -> bool:
    async with http.get(f"{runtime.admin_url}/metrics") as reply:
        text = await reply.text()
    return f'outcome="{outcome}",version="LATEST"}} 1.0' in text


async def test_a_draining_replica_is_retried_on_another(runtime_factory, gateway_for, http):
    first, second = (runtime_factory(RUNTIME_CODE, "handlers.slow") for _ in range(2))
    # The pool breaks ties by address: the lower port is asked first.
    draining, other = sorted((first, second), key=lambda runtime: runtime.port)
    port = await gateway_for(draining.port, other.port)
    warm = await exchange(port, get(b"/?seconds=0"))
    assert warm.status == 200  # the gateway now keeps an idle connection to `draining`
    # A slow request keeps `draining` busy (and alive) while it drains.
    slow = asyncio.create_task(http.get(f"{draining.url}/?seconds=5"))
    await eventually(lambda: _in_flight(http, draining), message="the slow request in flight")
    draining.process.send_signal(signal.SIGTERM)
    await eventually(lambda: _phase(http, draining, 503), message="the replica draining")
    reply = await exchange(port, get(b"/?seconds=0"))
    assert reply.status == 200
    assert reply.body == b"slept"
    assert await _metric(http, draining, "rejected")  # it did reach the draining one
    (await slow).release()


async def _in_flight(http, runtime) -> bool:
    async with http.get(f"{runtime.admin_url}/metrics") as reply:
        return (
            'hanshu_runtime_in_flight{function="test-fn",version="LATEST"} 1.0'
            in await reply.text()
        )


async def _phase(http, runtime, status: int) -> bool:
    async with http.get(f"{runtime.admin_url}/readyz") as reply:
        return reply.status == status


# -- the hop to a replica itself ------------------------------------------------------------


async def test_the_upstream_client_never_writes_a_line_break_into_a_request():
    received: list[str] = []

    async def record(request: web.Request) -> web.Response:
        received.append(request.raw_path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    async with serving(app) as port:
        endpoint, pool = Endpoint("127.0.0.1", port), UpstreamPool()
        for target, headers in (
            ("/a\r\nX-Injected: 1", []),
            ("/a b", []),
            ("/a", [("X-A", "a\r\nX-Injected: 1")]),
            ("/a", [("X-A", "a\nb")]),
            ("/a", [("X-A\r\nX-B", "b")]),
        ):
            with pytest.raises(ValueError, match="refusing to write"):
                await pool.request(endpoint, "GET", target, headers, b"", 5)
        assert (await pool.request(endpoint, "GET", "/fine", [], b"", 5)).status == 200
        pool.close()
    assert received == ["/fine"]


async def test_an_interim_reply_never_stands_in_for_the_real_one():
    """A server in a user's image may send '100 Continue' or '103 Early Hints' first: the
    caller gets the final reply, and the next request on the kept-alive connection gets
    its own, not the previous one's."""
    served = 0

    async def replica(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        while await reader.readuntil(b"\r\n\r\n"):
            served += 1
            body = f"reply {served}".encode()
            writer.write(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                + b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
                + body
            )
            await writer.drain()

    server = await asyncio.start_server(replica, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = UpstreamPool()
    try:
        endpoint = Endpoint("127.0.0.1", port)
        for expected in (b"reply 1", b"reply 2"):
            reply = await pool.request(endpoint, "GET", "/", [], b"", 5)
            assert (reply.status, reply.body) == (200, expected)
    finally:
        pool.close()
        server.close()
        await server.wait_closed()


async def test_head_gets_the_length_a_get_would_get(platform):
    got = await exchange(platform.port, get(b"/echo/plain"))
    assert got.status == 200
    reader, writer = await asyncio.open_connection("127.0.0.1", platform.port)
    try:
        writer.write(get(b"/echo/plain", method=b"HEAD"))  # Connection: close: read to EOF
        async with asyncio.timeout(30):
            head = await reader.read(-1)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 200"), head
    assert head.endswith(b"\r\n\r\n")  # no body
    assert b"Content-Length: %d\r\n" % len(got.body) in head
