"""What of a caller's headers a function sees, through the real gateway (dev mode) in front
of real runtime processes serving a real Flask app, a real FastAPI app, a plain WSGI app
and an event handler: reserved names in any spelling never arrive, and the Host is the
caller's, as nginx (``proxy_set_header Host $host``) and Knative pass it on."""

from __future__ import annotations

import asyncio
import json
import textwrap
from typing import Any

import pytest

from tests.helpers import eventually

from .conftest import function, trigger

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
            lambda name=name: started.ready_replicas(name) == 1, message=f"{name} ready"
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
    assert not names & {"x-hanshu-invocation-id", "x-hanshu-attempt", "x-hanshu-job-id"}
    assert event["invocationId"] != "forged"
    assert event["attempt"] == 1
