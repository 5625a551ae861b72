"""Lambda code runs unmodified: the real adapters from PyPI (Mangum, apig-wsgi, Powertools)
and a plain proxy handler, as event handlers behind the real gateway (dev mode) and real
runtime processes. Each is called the way a browser or curl would call it, under a Trigger
prefix the gateway strips, and what the caller gets back is what is checked."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.support.dev_platform import function, trigger

RUNTIME_CODE = Path(__file__).resolve().parent.parent / "runtime_code"
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "from-lambda"


def lambda_function(
    name: str, module: str, handler: str = "handler", **spec: Any
) -> dict[str, Any]:
    """A Function whose inline code is one of the Lambda modules, file for file, as an
    ordinary event handler: nothing in it knows it is not on AWS."""
    code = {f"{module}.py": (RUNTIME_CODE / f"{module}.py").read_text()}
    return function(name, handler=f"{module}.{handler}", code={"inline": code}, **spec)


def platform_with(platform_factory: Any, module: str, prefix: str, **spec: Any) -> Any:
    return platform_factory(
        [
            lambda_function("fn", module, **spec),
            trigger("web", "fn", path=prefix, stripPrefix=True),
        ]
    )


async def test_mangum_serves_fastapi_path_query_json_body_and_two_cookies(platform_factory):
    platform = platform_with(platform_factory, "lambda_mangum", "/shop")
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{platform.url}/shop/orders/42?tag=a&tag=b%20c", headers={"X-Request-Id": "req-1"}
        ) as reply:
            assert reply.status == 200, await reply.text()
            assert await reply.json() == {
                "order_id": 42,
                "tags": ["a", "b c"],
                "client": "127.0.0.1",
                "source_ip": "127.0.0.1",
                "request_id": "req-1",
            }
        async with http.post(
            f"{platform.url}/shop/orders", json={"item": "tea", "quantity": 2}
        ) as reply:
            assert reply.status == 201, await reply.text()
            assert reply.content_type == "application/json"
            assert await reply.json() == {"item": "tea", "quantity": 2}
            cookies = reply.headers.getall("Set-Cookie")
        assert len(cookies) == 2
        assert cookies[0].startswith("session=s-1;")
        assert cookies[1].startswith("theme=dark;")
        async with http.post(f"{platform.url}/shop/orders", json={"item": "tea"}) as reply:
            assert reply.status == 422  # FastAPI's own validation answer, through Mangum


async def test_apig_wsgi_serves_flask_repeated_query_and_binary_bodies(platform_factory):
    platform = platform_with(platform_factory, "lambda_apig_flask", "/flask")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{platform.url}/flask/search?tag=a&tag=b&q=x%26y") as reply:
            assert reply.status == 200, await reply.text()
            assert await reply.json() == {"tag": ["a", "b"], "q": "x&y"}
        upload = bytes(range(256)) * 4
        async with http.post(
            f"{platform.url}/flask/upload",
            data=upload,
            headers={"Content-Type": "application/octet-stream"},
        ) as reply:
            assert reply.status == 200, await reply.text()
            assert await reply.json() == {
                "size": len(upload),
                "sha256": hashlib.sha256(upload).hexdigest(),
            }
        async with http.get(f"{platform.url}/flask/pixel") as reply:
            assert reply.status == 200
            assert reply.content_type == "application/octet-stream"
            assert await reply.read() == bytes(range(256))


async def test_powertools_rest_resolver_routes_and_reads_the_query(platform_factory):
    platform = platform_with(platform_factory, "lambda_powertools", "/api")
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{platform.url}/api/todos/7?verbose=yes&field=title&field=done"
        ) as reply:
            assert reply.status == 200, await reply.text()
            assert await reply.json() == {
                "id": "7",
                "verbose": "yes",
                "fields": ["title", "done"],
                "function_arn": "arn:hanshu:function::default:function:fn",
            }
        async with http.get(f"{platform.url}/api/todos") as reply:
            assert reply.status == 404  # the resolver's own "no route", not a runtime error
        # The stripped prefix reaches Powertools as API Gateway's stage: the OpenAPI server
        # its Swagger UI calls is the prefix the browser used.
        async with http.get(f"{platform.url}/api/swagger") as reply:
            assert reply.status == 200
            page = await reply.text()
    servers = re.search(r'"servers":\s*(\[[^\]]*\])', page)
    assert servers is not None, page[:500]
    assert json.loads(servers.group(1)) == [{"url": "/api"}]


async def test_plain_lambda_handler_reads_the_v1_event_and_the_context(platform_factory):
    platform = platform_with(
        platform_factory,
        "lambda_proxy",
        "/lambda",
        handler="lambda_handler",
        resources={"limits": {"memory": "256Mi"}},
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{platform.url}/lambda/greet/you?name=Ada&color=red&color=blue",
            json={"n": 1},
            headers=[
                ("Accept", "text/plain"),
                ("Accept", "application/json"),
                ("User-Agent", "lambda-test/1"),
            ],
        ) as reply,
    ):
        assert reply.status == 200, await reply.text()
        assert reply.headers["X-Handler"] == "lambda"
        # multiValueHeaders in the reply: two Set-Cookie headers, as API Gateway sends.
        assert reply.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
        request_id = reply.headers["X-Request-Id"]
        seen = await reply.json()
    assert seen["resource"] == "/{proxy+}"
    assert seen["path"] == "/greet/you"
    assert seen["proxy"] == "greet/you"
    assert seen["httpMethod"] == "POST"
    assert (seen["name"], seen["colors"]) == ("Ada", ["red", "blue"])
    assert seen["accept"] == ["text/plain", "application/json"]
    assert seen["stageVariables"] is None
    assert seen["body"] == {"n": 1}
    assert seen["isBase64Encoded"] is False
    request_context = seen["requestContext"]
    assert request_context["requestId"] == request_id
    assert request_context["resourcePath"] == "/{proxy+}"
    assert request_context["httpMethod"] == "POST"
    assert request_context["path"] == "/lambda/greet/you"
    assert request_context["stage"] == "lambda"
    assert request_context["protocol"] == "HTTP/1.1"
    assert request_context["requestTimeEpoch"] > 1_700_000_000_000
    assert request_context["sourceIp"] == "127.0.0.1"
    assert request_context["userAgent"] == "lambda-test/1"
    context = seen["context"]
    assert context["function_name"] == "fn"
    assert context["invoked_function_arn"] == "arn:hanshu:function::default:function:fn"
    assert context["memory_limit_in_mb"] == 256
    assert context["aws_request_id"] == request_id
    assert context["log_group_name"] == "/hanshu/default/fn"
    assert context["log_stream_name"]
    assert context["cognito_identity_id"] is None
    assert context["client_context"] is None
    assert 0 < context["remaining_ms"] <= 30_000
    # A synchronous HTTP call: its own invocation, first attempt.
    assert (context["invocation_id"], context["attempt"], context["invocation_type"]) == (
        request_id,
        1,
        "Sync",
    )


async def test_a_lambda_event_without_a_query_has_null_query_maps(platform_factory):
    platform = platform_with(platform_factory, "lambda_proxy", "/lambda", handler="lambda_handler")
    async with aiohttp.ClientSession() as http, http.get(f"{platform.url}/lambda") as reply:
        assert reply.status == 200, await reply.text()
        seen = await reply.json()
    # Only `event["queryStringParameters"] or {}` made this work: Lambda sends null.
    assert (seen["name"], seen["colors"]) == (None, [])
    assert (seen["resource"], seen["path"], seen["proxy"]) == ("/", "/", None)
    assert seen["context"]["invocation_type"] == "Sync"
    assert seen["context"]["attempt"] == 1
    assert seen["context"]["invocation_id"] == seen["context"]["aws_request_id"]


async def test_the_from_lambda_example_runs_as_it_is(platform_factory):
    documents = [
        document
        for path in sorted(EXAMPLE.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]
    platform = platform_factory(documents)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{platform.url}/from-lambda/hello?name=Ada") as reply:
            assert reply.status == 200, await reply.text()
            body = await reply.json()
            assert len(reply.headers.getall("Set-Cookie")) == 2
        assert body["message"] == "Hello, Ada!"
        async with http.post(
            f"{platform.url}/from-lambda/echo",
            data=b"\x00\x01binary",
            headers={"Content-Type": "application/octet-stream"},
        ) as reply:
            assert reply.status == 200, await reply.text()
            body = await reply.json()
        assert base64.b64decode(body["received"]) == b"\x00\x01binary"
