"""The event contract over real HTTP: a runtime process on loopback per test."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import aiohttp

CODE = Path(__file__).parent / "runtime_code"


async def test_event_has_the_api_gateway_shape(runtime_factory, http: aiohttp.ClientSession):
    runtime = runtime_factory(CODE, "handlers.echo", HANSHU_MEMORY_MB="256", HANSHU_TIMEOUT="7")
    async with http.post(
        f"{runtime.url}/orders/42?tag=a&tag=b&single=x",
        data=b'{"n": 1}',
        headers=[
            ("Content-Type", "application/json"),
            ("X-Multi", "one"),
            ("X-Multi", "two"),
            ("X-Request-Id", "req-123"),
        ],
    ) as reply:
        assert reply.status == 200
        assert reply.headers["X-Request-Id"] == "req-123"
        assert reply.content_type == "application/json"
        payload = await reply.json()
    event, context = payload["event"], payload["context"]
    assert event["path"] == "/orders/42"
    assert event["httpMethod"] == "POST"
    assert event["queryParameters"] == {"tag": "b", "single": "x"}
    assert event["multiValueQueryParameters"] == {"tag": ["a", "b"], "single": ["x"]}
    assert event["rawQueryString"] == "tag=a&tag=b&single=x"
    assert event["multiValueHeaders"]["X-Multi"] == ["one", "two"]
    assert event["headers"]["Content-Type"] == "application/json"
    # Lambda's API Gateway REST names for the same request, next to Function Compute's.
    assert event["resource"] == event["requestContext"]["resourcePath"] == "/{proxy+}"
    assert event["pathParameters"] == {"proxy": "orders/42"}
    assert event["queryStringParameters"] == {"tag": "b", "single": "x"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"], "single": ["x"]}
    assert event["stageVariables"] is None
    assert event["body"] == '{"n": 1}'
    assert event["isBase64Encoded"] is False
    assert event["requestContext"]["sourceIp"] == "127.0.0.1"
    assert event["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"
    assert event["requestContext"]["requestId"] == "req-123"
    assert event["requestContext"]["stage"] == "$default"
    assert context["request_id"] == "req-123"
    assert context["function_name"] == "test-fn"
    assert context["memory_limit_in_mb"] == 256
    assert 0 < context["remaining_ms"] <= 7000


async def test_binary_request_body_arrives_base64(runtime_factory, http):
    runtime = runtime_factory(CODE, "handlers.echo")
    raw = bytes(range(256))
    async with http.put(
        f"{runtime.url}/upload", data=raw, headers={"Content-Type": "application/octet-stream"}
    ) as reply:
        event = (await reply.json())["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


async def test_request_id_is_generated_when_the_caller_sends_none(runtime_factory, http):
    runtime = runtime_factory(CODE, "handlers.echo")
    async with http.get(f"{runtime.url}/") as first, http.get(f"{runtime.url}/") as second:
        first_id = (await first.json())["context"]["request_id"]
        second_id = (await second.json())["context"]["request_id"]
        assert first.headers["X-Request-Id"] == first_id
    assert first_id
    assert second_id
    assert first_id != second_id


async def test_async_handler(runtime_factory, http):
    runtime = runtime_factory(CODE, "handlers.async_echo")
    async with http.get(f"{runtime.url}/a?x=1") as reply:
        assert reply.status == 200
        assert (await reply.json())["event"]["queryParameters"] == {"x": "1"}


async def test_proxy_reply_keeps_status_multi_value_headers_and_cookies(runtime_factory, http):
    runtime = runtime_factory(CODE, "handlers.proxy")
    async with http.get(f"{runtime.url}/") as reply:
        assert reply.status == 201
        assert reply.headers["X-Single"] == "one"
        assert reply.headers.getall("X-Multi") == ["a", "b"]
        assert reply.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
        assert reply.headers["Content-Type"] == "application/x-custom"
        assert await reply.text() == "created"


async def test_base64_reply_is_sent_as_bytes(runtime_factory, http):
    runtime = runtime_factory(CODE, "handlers.binary")
    async with http.get(f"{runtime.url}/") as reply:
        assert reply.headers["Content-Type"] == "image/png"
        assert await reply.read() == b"\x89PNG\x00\xff"


async def test_plain_return_values(runtime_factory, http):
    expectations = {
        "plain_text": (200, "text/plain", b"just text"),
        "raw_bytes": (200, "application/octet-stream", b"\x00\x01\x02"),
        "a_list": (200, "application/json", b'[1,"two",{"three":3}]'),
        "nothing": (204, None, b""),
    }
    for name, (status, content_type, body) in expectations.items():
        runtime = runtime_factory(CODE, f"handlers.{name}")
        async with http.get(f"{runtime.url}/") as reply:
            assert reply.status == status, name
            if content_type:
                assert reply.content_type == content_type, name
            assert await reply.read() == body, name
        runtime.stop()


async def test_invoke_path_takes_a_json_event_and_returns_json(runtime_factory, http):
    runtime = runtime_factory(CODE, "handlers.invoke_echo")
    async with http.post(
        f"{runtime.url}/_hanshu/invoke",
        json={"source": "schedule", "n": 3},
        headers={"X-Request-Id": "fire-1"},
    ) as reply:
        assert reply.status == 200
        assert await reply.json() == {"got": {"source": "schedule", "n": 3}, "requestId": "fire-1"}


async def test_invoke_path_refuses_a_body_that_is_not_json(runtime_factory, http):
    runtime = runtime_factory(CODE, "handlers.invoke_echo")
    async with http.post(f"{runtime.url}/_hanshu/invoke", data=b"{not json") as reply:
        assert reply.status == 400
        body = await reply.json()
        assert body["errorType"] == "InvalidRequestContent"


async def test_initializer_runs_once_before_ready(runtime_factory, http):
    runtime = runtime_factory(
        CODE, "initialized.handler", HANSHU_INITIALIZER="initialized.initialize"
    )
    for _ in range(3):
        async with http.get(f"{runtime.url}/") as reply:
            assert await reply.json() == {"initializer_calls": 1}


async def test_logs_are_json_lines_with_the_request_id(runtime_factory, http):
    runtime = runtime_factory(CODE, "handlers.log_and_reply")
    async with http.get(f"{runtime.url}/", headers={"X-Request-Id": "log-me"}) as reply:
        assert await reply.text() == "logged"
    assert runtime.stop() == 0
    lines = [json.loads(line) for line in runtime.logs().splitlines() if line.strip()]
    user_lines = [line for line in lines if line["message"] == "user log line"]
    assert user_lines
    assert user_lines[0]["requestId"] == "log-me"
    assert user_lines[0]["function"] == "test-fn"


async def test_a_handler_cannot_forge_the_draining_header(runtime_factory, http):
    runtime = runtime_factory(CODE, "handlers.own_503")
    async with http.get(f"{runtime.url}/") as reply:
        assert reply.status == 503  # the function's own 503 reaches the caller as it is ...
        assert (await reply.json())["errorMessage"] == "our database is draining"
        assert "X-Hanshu-Draining" not in reply.headers  # ... without the runtime's mark


async def test_lambda_context_and_the_dispatchers_invocation_headers(runtime_factory, http):
    runtime = runtime_factory(
        CODE,
        "lambda_proxy.lambda_handler",
        HANSHU_NAMESPACE="shop",
        HANSHU_FUNCTION_VERSION="4",
        HOSTNAME="orders-6c9f-x2",
    )
    async with http.get(
        f"{runtime.url}/",
        headers={
            "X-Request-Id": "req-9",
            "X-Hanshu-Invocation-Id": "inv-1",
            "X-Hanshu-Attempt": "3",
            "X-Hanshu-Invocation-Type": "batch",
        },
    ) as reply:
        assert reply.status == 200
        context = (await reply.json())["context"]
    assert context["function_name"] == "test-fn"
    assert context["function_version"] == "4"
    assert context["invoked_function_arn"] == "arn:hanshu:function::shop:function:test-fn"
    assert context["log_group_name"] == "/hanshu/shop/test-fn"
    assert context["log_stream_name"] == "orders-6c9f-x2"
    assert context["aws_request_id"] == "req-9"
    assert (context["invocation_id"], context["attempt"], context["invocation_type"]) == (
        "inv-1",
        3,
        "Batch",
    )
    async with http.get(
        f"{runtime.url}/", headers={"X-Hanshu-Attempt": "first", "X-Hanshu-Invocation-Type": "?"}
    ) as reply:
        context = (await reply.json())["context"]
    assert context["invocation_id"] == context["aws_request_id"]
    assert (context["attempt"], context["invocation_type"]) == (1, "Sync")


async def test_raw_invocations_carry_the_invocation_headers_too(runtime_factory, http):
    runtime = runtime_factory(CODE, "lambda_proxy.invocation")
    async with http.post(
        f"{runtime.url}/_hanshu/invoke",
        json={"source": "bucket"},
        headers={"X-Hanshu-Invocation-Id": "inv-2", "X-Hanshu-Invocation-Type": "Event"},
    ) as reply:
        assert reply.status == 200
        assert await reply.json() == {"invocation_id": "inv-2", "attempt": 1, "type": "Event"}
