"""The runtime's HTTP/1.1 on the wire, byte for byte over plain sockets, against a real
``python -m hanshu_runtime``: what any client or proxy in front may send (pipelining,
``Expect: 100-continue``, HEAD, garbage) and what a handler may try to put in its reply
(its own framing, a header with a line break)."""

from __future__ import annotations

import asyncio
import json
import textwrap
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.http_wire_cases import REFUSED_FRAMING, SMUGGLED
from tests.support.runtime_process import start_runtime, wait_ready
from tests.support.servers import free_port

HANDLERS = textwrap.dedent("""
    def echo(event, context):
        return {"path": event["rawPath"], "body": event.get("body")}


    def own_framing(event, context):
        return {
            "statusCode": 200,
            "headers": {"Content-Length": "999", "Transfer-Encoding": "chunked",
                        "Connection": "close", "X-Kept": "yes"},
            "body": "short",
        }


    def headers(event, context):
        return {"headers": event["headers"], "body": event.get("body")}


    def split_header(event, context):
        return {"statusCode": 200, "headers": {"X-Evil": "a\\r\\nSet-Cookie: session=stolen"},
                "body": "no"}
""")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def read_reply(reader: asyncio.StreamReader, head: bool = False) -> Reply:
    status_line = (await reader.readline()).decode("latin-1")
    assert status_line.startswith("HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := (await reader.readline()).decode("latin-1")) != "\r\n":
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = 0 if head else int(headers.get("content-length", "0"))
    return Reply(int(status_line.split()[1]), headers, await reader.readexactly(length))


async def error_reply(reader: asyncio.StreamReader, status: int, error_type: str) -> Reply:
    """The next reply, asserted to be the runtime's JSON error of this status and type."""
    reply = await asyncio.wait_for(read_reply(reader), 10)
    assert reply.status == status
    assert reply.json()["errorType"] == error_type
    return reply


@pytest.fixture
def runtime(runtime_factory, tmp_path):
    (tmp_path / "wire.py").write_text(HANDLERS)
    return lambda handler, **env: runtime_factory(tmp_path, f"wire.{handler}", **env)


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def test_pipelined_requests_are_answered_in_order_on_one_connection(runtime):
    served = runtime("echo")
    reader, writer = await connect(served.url)
    writer.write(
        b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
        b"GET /third HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    replies = [await asyncio.wait_for(read_reply(reader), 10) for _ in range(3)]
    assert [reply.json()["path"] for reply in replies] == ["/first", "/second", "/third"]
    assert replies[1].json()["body"] == "body"
    assert all(reply.headers.get("connection") != "close" for reply in replies)
    writer.close()


async def test_expect_100_continue_is_answered_before_the_body_is_sent(runtime):
    served = runtime("echo")
    reader, writer = await connect(served.url)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"hello")
    reply = await asyncio.wait_for(read_reply(reader), 10)
    assert reply.status == 200
    assert reply.json()["body"] == "hello"
    writer.close()


async def test_a_declared_body_over_the_limit_is_413_without_100_continue_or_reading_it(runtime):
    served = runtime("echo", HANSHU_MAX_BODY_BYTES="1000")
    reader, writer = await connect(served.url)
    writer.write(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n"
    )
    reply = await error_reply(reader, 413, "RequestTooLarge")
    assert reply.headers["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, the body never read
    writer.close()


async def test_a_malformed_request_is_a_json_400_and_the_runtime_keeps_serving(runtime):
    served = runtime("echo")
    reader, writer = await connect(served.url)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
    reply = await error_reply(reader, 400, "BadRequest")
    assert "malformed HTTP request" in reply.json()["errorMessage"]
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()

    reader, writer = await connect(served.url)
    writer.write(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(read_reply(reader), 10)).json()["path"] == "/after"
    writer.close()


async def test_head_gets_the_length_of_the_body_and_no_body(runtime):
    served = runtime("echo")
    reader, writer = await connect(served.url)
    writer.write(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(read_reply(reader, head=True), 10)
    assert head.status == 200
    assert int(head.headers["content-length"]) == len(b'{"path":"/h","body":null}')
    # The next reply starts right after HEAD's headers: no body bytes were sent.
    assert (await asyncio.wait_for(read_reply(reader), 10)).json()["path"] == "/g"
    writer.close()


async def test_a_reply_cannot_set_its_own_framing(runtime):
    served = runtime("own_framing")
    reader, writer = await connect(served.url)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    for _ in range(2):  # the connection outlives the reply's "Connection: close"
        reply = await asyncio.wait_for(read_reply(reader), 10)
        assert reply.body == b"short"
        assert reply.headers["content-length"] == "5"
        assert "transfer-encoding" not in reply.headers
        assert reply.headers["x-kept"] == "yes"
    writer.close()


async def test_a_header_with_a_line_break_is_a_502_not_a_second_header(runtime):
    served = runtime("split_header")
    reader, writer = await connect(served.url)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = await error_reply(reader, 502, "InvalidResponse")
    assert "line break" in reply.json()["errorMessage"]
    assert "set-cookie" not in reply.headers
    writer.close()


async def test_a_request_head_without_end_is_431_not_unbounded_memory(runtime):
    served = runtime("echo")
    reader, writer = await connect(served.url)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: " + b"a" * 70_000 + b"\r\n")
    await error_reply(reader, 431, "HeadersTooLarge")
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()


async def test_a_client_that_stops_halfway_through_a_request_is_disconnected():
    """The idle clock runs while a request is still arriving, not only between requests
    (here 0.3 s instead of the runtime's 75 s, on a server in this process)."""
    from hanshu_runtime.http_server import HttpServer, Request, Response

    async def hello(request: Request) -> Response:
        return Response(200, [], b"hello")

    server = HttpServer(hello, max_body_bytes=1000, keepalive_seconds=0.3)
    port = free_port()
    await server.listen("127.0.0.1", port)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # the head never ends
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
        writer.close()
        # A whole request on a new connection is served as usual.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(read_reply(reader), 5)).body == b"hello"
        writer.close()
    finally:
        server.close()


async def test_an_upgrade_request_is_served_as_http_1_1_with_its_body(runtime):
    """``curl --http2`` asks every request to switch to h2c: the runtime ignores that, as
    RFC 9110 allows, and serves the request, body and what is pipelined after it."""
    served = runtime("echo")
    reader, writer = await connect(served.url)
    writer.write(
        b"POST /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 11\r\n\r\n"
        b"hello"
    )
    await asyncio.sleep(0)  # the body may come in pieces
    writer.write(b" world")
    writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    first = await asyncio.wait_for(read_reply(reader), 10)
    assert first.status == 200
    assert first.json() == {"path": "/up", "body": "hello world"}
    assert (await asyncio.wait_for(read_reply(reader), 10)).json()["path"] == "/next"
    writer.close()


async def test_a_reply_with_a_non_final_status_or_untextual_header_is_a_502(
    runtime_factory, tmp_path
):
    (tmp_path / "bad.py").write_text(
        textwrap.dedent("""
            def early_hints(event, context):
                return {"statusCode": 103, "body": ""}


            def reflect(event, context):
                return {"statusCode": 200, "headers": {"X-Origin": event["headers"]["Origin"]}}
        """)
    )
    for handler, request, fragment in (
        ("early_hints", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not a final HTTP status"),
        ("reflect", b"GET / HTTP/1.1\r\nHost: x\r\nOrigin: \xff\r\n\r\n", "not valid text"),
    ):
        served = runtime_factory(tmp_path, f"bad.{handler}")
        reader, writer = await connect(served.url)
        writer.write(request)
        reply = await error_reply(reader, 502, "InvalidResponse")
        assert fragment in reply.json()["errorMessage"]
        writer.close()


def test_a_client_still_sending_a_body_over_the_limit_reads_the_413(runtime):
    """The body is not stored, but read and dropped while the client sends it: closing at
    once would reset the connection under a client still writing (http.client, requests),
    which would then never see the reply."""
    import http.client

    served = runtime("echo", HANSHU_MAX_BODY_BYTES="1000")
    host, port = served.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("POST", "/", body=b"x" * 8_000_000)
    reply = connection.getresponse()
    assert reply.status == 413
    assert json.loads(reply.read())["errorType"] == "RequestTooLarge"
    connection.close()


async def test_a_kept_alive_connection_is_answered_draining_after_sigterm_then_closed(runtime):
    """With nothing in flight, the runtime does not close kept-alive connections the moment
    SIGTERM comes: a gateway that has not yet seen the endpoint go may be sending on one,
    and must get the runtime's own 503 (retried elsewhere), not a connection closed
    without a reply. Once requests stop coming, it exits."""
    import signal

    served = runtime("echo", HANSHU_DRAIN_SECONDS="20")
    reader, writer = await connect(served.url)
    writer.write(b"GET /before HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(read_reply(reader), 10)).status == 200

    served.process.send_signal(signal.SIGTERM)
    while True:  # until readiness drops: the runtime is draining
        admin_reader, admin_writer = await connect(served.admin_url)
        admin_writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        ready = await asyncio.wait_for(read_reply(admin_reader), 10)
        admin_writer.close()
        if ready.status == 503:
            break
    writer.write(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = await asyncio.wait_for(read_reply(reader), 10)
    assert reply.status == 503
    assert reply.headers["x-hanshu-draining"] == "true"
    assert reply.headers["connection"] == "close"
    writer.close()
    assert await asyncio.to_thread(served.process.wait, 10) == 0


@pytest.fixture(scope="module")
def echo_runtime(tmp_path_factory):
    """One runtime for the many framing cases (each on its own connection)."""
    code = tmp_path_factory.mktemp("wire")
    (code / "wire.py").write_text(HANDLERS)
    runtime = start_runtime(code, "wire.echo", code)
    wait_ready(runtime)
    yield runtime
    runtime.stop(timeout=10)


@pytest.mark.parametrize(("request_bytes", "status", "error_type"), REFUSED_FRAMING)
async def test_framing_in_doubt_is_refused_and_the_connection_closed(
    echo_runtime, request_bytes, status, error_type
):
    reader, writer = await connect(echo_runtime.url)
    writer.write(request_bytes + SMUGGLED)
    reply = await asyncio.wait_for(read_reply(reader), 10)
    assert reply.status == status, reply.body
    assert reply.headers["connection"] == "close"
    assert reply.json()["errorMessage"]
    if error_type is not None:
        assert reply.json()["errorType"] == error_type
    assert await asyncio.wait_for(reader.read(), 10) == b""  # /smuggled never answered
    writer.close()


async def test_trailers_never_become_headers(runtime):
    served = runtime("headers")
    reader, writer = await connect(served.url)
    writer.write(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\nX-Hanshu-Invocation-Id: forged\r\nX-Trailer: t\r\n\r\n"
    )
    reply = await asyncio.wait_for(read_reply(reader), 10)
    assert reply.json()["body"] == "ok"
    names = {name.lower() for name in reply.json()["headers"]}
    # traceparent: the runtime starts a trace for a call that came without one.
    assert names == {"host", "transfer-encoding", "traceparent"}
    writer.close()


async def test_the_runtime_holds_a_head_to_the_gateways_limits(echo_runtime):
    """The same 414 and 431 as the gateway's public port: a replica never answers a head
    the gateway let through with a refusal of its own."""
    for request, status, error_type in (
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "TargetTooLong"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431, None),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-%d: a\r\n" % n for n in range(200))
            + b"\r\n",
            431,
            None,
        ),
    ):
        reader, writer = await connect(echo_runtime.url)
        writer.write(request)
        reply = await error_reply(reader, status, error_type or "HeadersTooLarge")
        assert reply.headers["connection"] == "close"
        writer.close()


async def test_a_refusal_behind_pipelined_requests_comes_after_their_replies(echo_runtime):
    reader, writer = await connect(echo_runtime.url)
    writer.write(
        b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
        b"GET /two HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + SMUGGLED
    )
    first = await asyncio.wait_for(read_reply(reader), 10)
    assert first.json() == {"path": "/first", "body": "one"}
    refused = await error_reply(reader, 400, "DuplicateHost")
    assert refused.headers["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
