"""Payload format 2.0 per HTTP Trigger (``payloadFormatVersion: "2.0"``), as API Gateway
HTTP APIs and Lambda function URLs send it: real adapters from PyPI, unmodified
(Powertools' APIGatewayHttpResolver and LambdaFunctionUrlResolver, Mangum around FastAPI)
and a plain handler reading ``event["requestContext"]["http"]["method"]``, behind the real
gateway (dev mode) and runtime processes, called as a browser or curl would call them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.dev_platform import function, trigger

CODE = (Path(__file__).resolve().parent.parent / "runtime_code" / "lambda_http_api.py").read_text()


def v2_function(name: str, handler: str) -> dict[str, Any]:
    return function(
        name, handler=f"lambda_http_api.{handler}", code={"inline": {"lambda_http_api.py": CODE}}
    )


@pytest.fixture
def platform(platform_factory):
    return platform_factory(
        [
            v2_function("http-api", "http_api_handler"),
            trigger(
                "http-api", "http-api", path="/v2", stripPrefix=True, payloadFormatVersion="2.0"
            ),
            v2_function("url", "function_url_handler"),
            trigger("url", "url", path="/url", stripPrefix=True, payloadFormatVersion="2.0"),
            v2_function("mangum", "mangum_handler"),
            trigger("mangum", "mangum", path="/shop", stripPrefix=True, payloadFormatVersion="2.0"),
            v2_function("plain", "plain_handler"),
            trigger("plain", "plain", path="/plain", stripPrefix=True, payloadFormatVersion="2.0"),
            # The default stays 1.0, and a caller cannot ask for another format.
            function("v1", handler="handlers.invoked"),
            trigger("v1", "v1", path="/v1", stripPrefix=True),
        ]
    )


async def test_powertools_http_api_resolver_routes_reads_cookies_and_sets_them(platform):
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{platform.url}/v2/todos/7?verbose=yes", headers={"Cookie": "session=s-1; lang=en"}
        ) as reply:
            assert reply.status == 200, await reply.text()
            assert await reply.json() == {
                "id": "7",
                "verbose": "yes",
                "cookies": ["session=s-1", "lang=en"],
                "method": "GET",
                "source_ip": "127.0.0.1",
            }
        async with http.post(f"{platform.url}/v2/todos", json={"title": "tea"}) as reply:
            assert reply.status == 201, await reply.text()
            assert await reply.json() == {"title": "tea"}
            assert reply.headers.getall("Set-Cookie") == ["seen=1; Secure", "theme=dark; Secure"]
        async with http.get(f"{platform.url}/v2/nowhere") as reply:
            assert reply.status == 404  # the resolver's own "no route"


async def test_powertools_function_url_resolver_routes_on_the_raw_path(platform):
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{platform.url}/url/hello/ada?lang=en") as reply,
    ):
        assert reply.status == 200, await reply.text()
        assert await reply.json() == {
            "hello": "ada",
            "raw_path": "/hello/ada",
            "lang": {"lang": "en"},
        }


async def test_mangum_detects_the_2_0_event_and_answers_with_its_cookies(platform):
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{platform.url}/shop/items/42?tag=a&tag=b%20c", headers={"Cookie": "session=s-9"}
        ) as reply:
            assert reply.status == 200, await reply.text()
            assert await reply.json() == {
                "item_id": 42,
                "tags": ["a", "b c"],
                "session": "s-9",
                "source_ip": "127.0.0.1",
            }
        async with http.post(f"{platform.url}/shop/items") as reply:
            assert reply.status == 201, await reply.text()
            cookies = reply.headers.getall("Set-Cookie")
        assert [c.split(";")[0] for c in cookies] == ["a=1", "b=2"]


async def test_a_plain_handler_reads_the_2_0_event_and_its_replies_follow_2_0_rules(platform):
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{platform.url}/plain/orders/7?tag=a&tag=b&q=x%26y",
            headers=[
                ("Accept", "text/plain"),
                ("Accept", "application/json"),
                ("Cookie", "a=1; b=2"),
                ("User-Agent", "v2-test/1"),
            ],
        ) as reply:
            assert reply.status == 200, await reply.text()
            assert reply.content_type == "application/json"
            request_id = reply.headers["X-Request-Id"]
            seen = await reply.json()
        assert seen["version"] == "2.0"
        assert seen["routeKey"] == "ANY /{proxy+}"
        assert seen["rawPath"] == "/orders/7"
        assert seen["rawQueryString"] == "tag=a&tag=b&q=x%26y"
        assert seen["query"] == {"tag": "a,b", "q": "x&y"}  # repeated values comma-joined
        assert seen["cookies"] == ["a=1", "b=2"]
        assert seen["has_cookie_header"] is False
        assert seen["accept"] == "text/plain,application/json"
        assert seen["http"] == {
            "method": "GET",
            "path": "/orders/7",
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": "v2-test/1",
        }
        assert seen["stage"] == "$default"
        assert seen["requestId"] == request_id
        assert seen["timeEpoch"] > 1_700_000_000_000
        assert seen["pathParameters"] == {"proxy": "orders/7"}
        assert seen["isBase64Encoded"] is False
        async with http.get(f"{platform.url}/plain/words") as reply:
            assert reply.status == 200
            assert reply.content_type == "application/json"
            assert await reply.text() == "just words"
        async with http.post(f"{platform.url}/plain/anything", data="hello") as reply:
            assert reply.status == 201
            assert reply.headers.getall("Set-Cookie") == ["x=1; Path=/", "y=2; Path=/"]
            assert await reply.text() == "hello"


async def test_the_default_is_1_0_and_a_caller_cannot_choose_the_format(platform):
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{platform.url}/v1/x", headers={"X-Hanshu-Payload-Format": "2.0"}) as reply,
    ):
        assert reply.status == 200, await reply.text()
        event = (await reply.json())["event"]
    assert "version" not in event
    assert event["httpMethod"] == "GET"
    assert "X-Hanshu-Payload-Format" not in event["headers"]
