"""What of a caller's headers a function sees, through the real gateway (dev mode) in front
of real runtime processes serving a real Flask app, a real FastAPI app, a plain WSGI app
and an event handler: reserved names in any spelling never arrive, and the Host is the
caller's, as nginx (``proxy_set_header Host $host``) and Knative pass it on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import textwrap
from collections.abc import AsyncIterator
from ipaddress import ip_network
from typing import Any

import pytest
from aiohttp import web
from hanshu_api.models import parse_function_spec, parse_trigger_spec
from hanshu_api.platform import Endpoint
from hanshu_gateway.catalog import Catalog, KnownTrigger
from hanshu_gateway.pipeline import Gateway, GatewayConfig

from tests.support.dev_platform import function, trigger
from tests.support.helpers import eventually
from tests.support.servers import free_port, serving

WARM = {"minReplicas": 1, "scaleToZeroGracePeriod": "60s"}

FLASK_APP = textwrap.dedent("""
    from flask import Flask, jsonify, request, url_for

    app = Flask(__name__)


    @app.route("/environ/<name>")
    def environ(name):
        env = request.environ
        return jsonify(
            http={key: value for key, value in env.items() if key.startswith("HTTP_")},
            server_name=env["SERVER_NAME"],
            server_port=env["SERVER_PORT"],
            scheme=env["wsgi.url_scheme"],
            external=url_for("environ", name=name, _external=True),
            host_url=request.host_url,
        )
""")

FASTAPI_APP = textwrap.dedent("""
    from fastapi import FastAPI, Request

    app = FastAPI()


    @app.get("/things/{name}")
    async def thing(name: str, request: Request):
        return {
            "url_for": str(request.url_for("thing", name=name)),
            "url": str(request.url),
            "server": list(request.scope["server"]),
            "host": request.headers.get("host"),
            "headers": dict(request.headers),
        }
""")

# Django's ALLOWED_HOSTS, as a plain WSGI app: 400 unless the Host is one it serves.
ALLOWED_HOSTS_APP = textwrap.dedent("""
    ALLOWED_HOSTS = {"shop.example.com"}


    def app(environ, start_response):
        host = environ.get("HTTP_HOST", "").rsplit(":", 1)[0]
        if host not in ALLOWED_HOSTS:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"DisallowedHost: " + host.encode()]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"served for " + host.encode()]
""")

EVENTS = textwrap.dedent("""
    def echo(event, context):
        return {"headers": event["headers"], "domainName": event["requestContext"]["domainName"],
                "invocationId": context.invocation_id, "attempt": context.attempt}
""")


def app_function(name: str, module: str, source: str, handler_type: str) -> dict[str, Any]:
    handler = f"{module}:app" if handler_type != "event" else f"{module}.echo"
    return function(
        name,
        handler=handler,
        handlerType=handler_type,
        code={"inline": {f"{module}.py": source}},
        scaling=WARM,
    )


@pytest.fixture
async def platform(platform_factory):
    started = platform_factory([
        app_function("flask", "flask_site", FLASK_APP, "wsgi"),
        app_function("fastapi", "fastapi_site", FASTAPI_APP, "asgi"),
        app_function("allowed", "allowed_site", ALLOWED_HOSTS_APP, "wsgi"),
        app_function("events", "events", EVENTS, "event"),
        trigger("flask", "flask", path="/flask", stripPrefix=True),
        trigger("fastapi", "fastapi", path="/fastapi", stripPrefix=True),
        trigger("allowed", "allowed", path="/allowed", stripPrefix=True),
        trigger("events", "events", path="/events", stripPrefix=True),
    ])  # fmt: skip
    for name in ("flask", "fastapi", "allowed", "events"):
        await eventually(
            lambda name=name: started.ready_replicas(name) == 1,
            timeout=60,  # four apps importing Flask and FastAPI on two shared cores
            message=f"{name} ready",
        )
    return started


async def exchange(port: int, target: str, *headers: str, host: str = "shop.example.com"):
    """One GET as raw bytes (a client library would refuse the spellings tested here):
    the status and the JSON body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    fields = "".join(f"{header}\r\n" for header in (f"Host: {host}", *headers))
    writer.write(f"GET {target} HTTP/1.1\r\n{fields}Connection: close\r\n\r\n".encode())
    async with asyncio.timeout(30):
        reply = await reader.read()
    writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


FORGED = (
    "X_Hanshu_Invocation_Id: forged",
    "x_hanshu_attempt: 99",
    "X-Hanshu-Invocation-Id: forged",
    "X-Hanshu-Attempt: 99",
    "X_Hanshu_Invocation_Type: Batch",
    "X_Hanshu_Job_Id: forged",
    "X_Forwarded_Prefix: /evil",
    "X_Hanshu_Payload_Format: 2.0",  # only a Trigger chooses the event's format
    "X-Hanshu-Resources: /{evil}",
)


async def test_a_forged_invocation_id_never_reaches_a_flask_app_in_any_spelling(platform):
    status, body = await exchange(platform.port, "/flask/environ/a", *FORGED)
    assert status == 200, body
    seen = json.loads(body)["http"]
    assert not [value for value in seen.values() if "forged" in value or value == "99"], seen
    assert seen["HTTP_X_FORWARDED_PREFIX"] == "/flask"  # the gateway's, not the caller's


async def test_an_event_handler_sees_neither_spelling_and_its_own_invocation_id(platform):
    status, body = await exchange(platform.port, "/events/a", *FORGED)
    assert status == 200, body
    event = json.loads(body)
    names = {name.lower().replace("_", "-") for name in event["headers"]}
    assert not names & {
        "x-hanshu-invocation-id",
        "x-hanshu-attempt",
        "x-hanshu-job-id",
        "x-hanshu-payload-format",
        "x-hanshu-resources",
    }
    assert event["invocationId"] != "forged"
    assert event["attempt"] == 1


FORGED_FORWARDING = (
    "X-Forwarded-Host: evil.example",
    "X-Forwarded-Proto: https",
    "X-Forwarded-For: 203.0.113.9",
    "X_Forwarded_Host: evil.example",
)


async def test_a_flask_app_builds_absolute_urls_on_the_callers_host(platform):
    status, body = await exchange(platform.port, "/flask/environ/a", *FORGED_FORWARDING)
    assert status == 200, body
    seen = json.loads(body)
    assert seen["external"] == "http://shop.example.com/flask/environ/a"
    assert seen["host_url"] == "http://shop.example.com/"
    assert (seen["server_name"], seen["server_port"]) == ("shop.example.com", "80")
    http = seen["http"]
    assert http["HTTP_HOST"] == "shop.example.com"
    # Set by the gateway alone: a caller's own never reaches the app.
    assert http["HTTP_X_FORWARDED_HOST"] == "shop.example.com"
    assert http["HTTP_X_FORWARDED_PROTO"] == "http"
    assert http["HTTP_X_FORWARDED_FOR"] == "127.0.0.1"


async def test_a_fastapi_app_builds_absolute_urls_on_the_callers_host(platform):
    target = "/fastapi/things/a?q=1"
    status, body = await exchange(platform.port, target, host="shop.example.com:8443")
    assert status == 200, body
    seen = json.loads(body)
    assert seen["url_for"] == "http://shop.example.com:8443/fastapi/things/a"
    assert seen["url"] == "http://shop.example.com:8443/fastapi/things/a?q=1"
    assert seen["server"] == ["shop.example.com", 8443]
    assert seen["host"] == "shop.example.com:8443"


async def test_an_allowed_hosts_check_sees_the_callers_host(platform):
    status, body = await exchange(platform.port, "/allowed/")
    assert (status, body) == (200, b"served for shop.example.com")
    status, body = await exchange(platform.port, "/allowed/", host="attacker.example")
    assert (status, body) == (400, b"DisallowedHost: attacker.example")


async def test_each_request_on_a_kept_alive_connection_carries_its_own_host(platform):
    """The gateway's pooled connections to the replica carry any host, request by request."""
    reader, writer = await asyncio.open_connection("127.0.0.1", platform.port)
    hosts = [f"h{n}.example" for n in range(6)]
    writer.write(
        b"".join(
            f"GET /events/{n} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
            for n, host in enumerate(hosts)
        )
    )
    seen = []
    async with asyncio.timeout(30):
        for _ in hosts:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            event = json.loads(await reader.readexactly(length))
            seen.append((event["headers"]["Host"], event["domainName"]))
    writer.close()
    assert seen == [(host, host) for host in hosts]


# -- with the gateway in this process, in front of a replica that shows what it got ------


@contextlib.asynccontextmanager
async def gateway_before(replica: int, **config: Any) -> AsyncIterator[int]:
    key = ("default", "web")
    catalog = Catalog(10, lambda namespace, trigger: None)
    catalog.set_function(key, parse_function_spec({"handler": "a.b", "code": {"image": "x"}}))
    catalog.set_endpoints(key, [Endpoint("127.0.0.1", replica)])
    route = {"functionRef": {"name": "web"}, "http": {"path": "/"}}
    catalog.set_triggers([KnownTrigger("default", "web", None, parse_trigger_spec(route))])
    port = free_port()
    settings = GatewayConfig(host="127.0.0.1", port=port, internal_port=free_port(), **config)
    gateway = Gateway(settings, catalog)
    await gateway.start()
    try:
        yield port
    finally:
        await gateway.close()


@pytest.fixture
async def replica() -> AsyncIterator[tuple[int, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    async def show(request: web.Request) -> web.Response:
        assert request.transport is not None
        seen.append({**request.headers, "peer": str(request.transport.get_extra_info("peername"))})
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", show)
    async with serving(app) as port:
        yield port, seen


async def test_a_trusted_proxys_forwarded_headers_are_kept_anyone_elses_replaced(replica):
    port, seen = replica
    forwarded = ("X-Forwarded-Proto: https", "X-Forwarded-For: 203.0.113.9")
    async with gateway_before(port) as gateway:
        assert (await exchange(gateway, "/", *forwarded))[0] == 200
    trusted = (ip_network("127.0.0.0/8"),)
    async with gateway_before(port, trusted_proxies=trusted) as gateway:
        assert (await exchange(gateway, "/", *forwarded))[0] == 200
    untrusted, kept = seen
    assert (untrusted["X-Forwarded-Proto"], untrusted["X-Forwarded-For"]) == ("http", "127.0.0.1")
    assert (kept["X-Forwarded-Proto"], kept["X-Forwarded-For"]) == (
        "https",
        "203.0.113.9, 127.0.0.1",
    )
    assert untrusted["Host"] == kept["Host"] == "shop.example.com"


async def test_one_pooled_connection_carries_each_requests_own_host(replica):
    port, seen = replica
    async with gateway_before(port) as gateway:
        for host in ("a.example", "b.example:8080", "a.example"):
            assert (await exchange(gateway, "/", host=host))[0] == 200
    assert [request["Host"] for request in seen] == ["a.example", "b.example:8080", "a.example"]
    assert len({request["peer"] for request in seen}) == 1  # kept alive, reused


async def test_what_a_connection_header_names_stays_on_its_hop(replica):
    port, seen = replica
    async with gateway_before(port) as gateway:
        listed = ("Connection: keep-alive, X-Hop-Only", "X-Hop-Only: 1", "X-Kept: 2")
        assert (await exchange(gateway, "/", *listed))[0] == 200
    (request,) = seen
    assert "X-Hop-Only" not in request  # RFC 9110 7.6.1
    assert request["X-Kept"] == "2"


async def test_an_absolute_form_targets_host_is_the_replicas_host(replica):
    port, seen = replica
    async with gateway_before(port) as gateway:
        for target in ("http://a.example/x", "http://[::1]:8080/x"):
            assert (await exchange(gateway, target, host="ignored.example"))[0] == 200
    # RFC 9112 3.2.2: the target's host, not the Host header; an IPv6 literal bracketed.
    assert [request["Host"] for request in seen] == ["a.example", "[::1]:8080"]
