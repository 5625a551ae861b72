"""Unit tests for the runtime's pure pieces: config, handler names, events, replies."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from hanshu_api.models import DEFAULT_MEMORY_MB
from hanshu_runtime.asgi import build_scope
from hanshu_runtime.config import HandlerType, config_from_env
from hanshu_runtime.context import Context, FunctionInfo, invocation_of
from hanshu_runtime.deadlines import Deadline, RequestIds
from hanshu_runtime.faults import (
    BuiltInModuleConflict,
    ConfigError,
    InvalidResponse,
    MalformedHandlerName,
)
from hanshu_runtime.http_events import (
    MAX_PREFIX_LENGTH,
    HttpRequest,
    build_event,
    encode_body,
    mount_prefix,
    request_time,
    source_ip,
)
from hanshu_runtime.loader import HandlerRef, parse_handler_ref
from hanshu_runtime.replies import build_reply
from hanshu_runtime.wsgi import build_environ
from multidict import CIMultiDict


def test_config_defaults_and_overrides():
    config = config_from_env({"HANSHU_HANDLER": "index.handler"})
    assert config.handler_type is HandlerType.EVENT
    assert (config.port, config.admin_port, config.timeout_seconds) == (8080, 9090, 30.0)
    assert config.max_body_bytes == 6 * 1024 * 1024
    assert config.code_dir == "/code"
    assert config.namespace == "default"
    assert config.instance  # the host name when HOSTNAME is not set
    # A pod with no memory set reports what the model meters it by.
    assert config.memory_mb == DEFAULT_MEMORY_MB
    config = config_from_env(
        {
            "HANSHU_HANDLER": "app:app",
            "HANSHU_HANDLER_TYPE": "ASGI",
            "HANSHU_CONCURRENCY": "8",
            "HANSHU_TIMEOUT": "2.5",
            "HANSHU_NAMESPACE": "shop",
            "HOSTNAME": "orders-7d9f-x2k",
        }
    )
    assert (config.namespace, config.instance) == ("shop", "orders-7d9f-x2k")
    assert (config.handler_type, config.concurrency, config.timeout_seconds) == (
        HandlerType.ASGI,
        8,
        2.5,
    )


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({}, "HANSHU_HANDLER is not set"),
        ({"HANSHU_HANDLER": "a.b", "HANSHU_CONCURRENCY": "0"}, "HANSHU_CONCURRENCY='0' is below 1"),
        ({"HANSHU_HANDLER": "a.b", "HANSHU_CONCURRENCY": "1.5"}, "not a whole number"),
        ({"HANSHU_HANDLER": "a.b", "HANSHU_PORT": "http"}, "HANSHU_PORT='http' is not a number"),
    ],
)
def test_config_errors_name_the_variable(env, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        config_from_env(env)


@pytest.mark.parametrize(
    ("spec", "ref"),
    [
        ("index.handler", HandlerRef("index", "handler")),
        ("pkg.mod.handler", HandlerRef("pkg.mod", "handler")),
        ("app:app", HandlerRef("app", "app")),
        ("project.wsgi:application", HandlerRef("project.wsgi", "application")),
        ("main:api.app", HandlerRef("main", "api.app")),
    ],
)
def test_handler_names(spec, ref):
    assert parse_handler_ref(spec) == ref


@pytest.mark.parametrize("spec", ["index", "index.", "1abc.handler", "a b.c", "a:b:c", ""])
def test_malformed_handler_names(spec):
    with pytest.raises(MalformedHandlerName):
        parse_handler_ref(spec)


@pytest.mark.parametrize("spec", ["json.handler", "email.utils:thing", "asyncio.main"])
def test_standard_library_names_are_refused(spec):
    with pytest.raises(BuiltInModuleConflict, match="rename"):
        parse_handler_ref(spec)


def test_body_encoding():
    assert encode_body(b"", "text/plain") == (None, False)
    assert encode_body(b'{"a":1}', "application/json; charset=utf-8") == ('{"a":1}', False)
    assert encode_body(b"a=1", "application/x-www-form-urlencoded") == ("a=1", False)
    assert encode_body(b"<x/>", "application/soap+xml") == ("<x/>", False)
    assert encode_body(b"text", "application/octet-stream") == (
        base64.b64encode(b"text").decode(),
        True,
    )
    assert encode_body(b"\xff\xfe", "text/plain") == (base64.b64encode(b"\xff\xfe").decode(), True)


def _request(**overrides):
    fields = dict(
        method="GET",
        path="/a%20b",
        raw_query="x=1&x=2&y=",
        body=b"",
        headers=[("Host", "h"), ("Cookie", "a=1"), ("Cookie", "b=2")],
        client_ip="10.0.0.1",
    )
    fields.update(overrides)
    return HttpRequest(**fields)


def test_event_multi_values_survive():
    event = build_event(_request(), "rid")
    assert event["path"] == "/a b"
    assert event["queryParameters"] == {"x": "2", "y": ""}
    assert event["multiValueQueryParameters"] == {"x": ["1", "2"], "y": [""]}
    assert event["multiValueHeaders"]["Cookie"] == ["a=1", "b=2"]
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    assert event["requestContext"]["requestId"] == "rid"


def test_event_speaks_lambda_rest_v1_next_to_function_compute():
    event = build_event(
        _request(
            headers=[("host", "api.example"), ("User-Agent", "curl/8"), ("X", "1"), ("X", "2")]
        ),
        "rid",
    )
    # The same parse under both names; Lambda's names hold what API Gateway would send.
    assert event["queryStringParameters"] == event["queryParameters"] == {"x": "2", "y": ""}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": [""]}
    assert event["headers"]["X"] == "2"
    assert event["multiValueHeaders"]["X"] == ["1", "2"]
    assert event["resource"] == "/{proxy+}"
    assert event["pathParameters"] == {"proxy": "a b"}
    assert event["stageVariables"] is None
    context = event["requestContext"]
    assert context["resourcePath"] == "/{proxy+}"
    assert (context["path"], context["stage"]) == ("/a b", "$default")
    assert context["identity"]["sourceIp"] == context["sourceIp"] == "10.0.0.1"
    assert context["identity"]["userAgent"] == "curl/8"
    assert context["identity"]["user"] is None
    assert context["domainName"] == "api.example"
    assert context["protocol"] == "HTTP/1.1"
    assert context["requestTime"] == request_time(context["requestTimeEpoch"] // 1000)


def test_event_without_a_query_has_null_lambda_maps_and_empty_fc_maps():
    event = build_event(_request(path="/", raw_query="", headers=[]), "rid")
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["queryParameters"] == event["multiValueQueryParameters"] == {}
    assert (event["resource"], event["pathParameters"]) == ("/", {})
    assert event["requestContext"]["identity"]["userAgent"] is None


@pytest.mark.parametrize(
    ("forwarded_for", "peer", "caller"),
    [
        (None, "10.0.0.1", "10.0.0.1"),
        ("203.0.113.9", "10.0.0.1", "203.0.113.9"),
        # Only the hop the gateway appended is trusted; the rest is the caller's claim.
        ("1.2.3.4, 203.0.113.9", "10.0.0.1", "203.0.113.9"),
        ("1.2.3.4, ", "10.0.0.1", "10.0.0.1"),
    ],
)
def test_source_ip_is_the_hop_the_gateway_saw(forwarded_for, peer, caller):
    assert source_ip(forwarded_for, peer) == caller


def test_request_time_is_api_gateways_clf_in_english_whatever_the_locale():
    assert request_time(1428582896) == "09/Apr/2015:12:34:56 +0000"


def _function_info(**overrides):
    fields = dict(
        name="orders",
        handler="app.handler",
        version="3",
        memory=256,
        timeout=7.0,
        namespace="shop",
        instance="orders-5f7-abc",
    )
    fields.update(overrides)
    return FunctionInfo(**fields)


def test_context_has_lambdas_attributes():
    context = Context("rid", _function_info(), 0.0, logger=None, invocation_id="rid")
    assert context.aws_request_id == context.request_id == "rid"
    assert (context.function_name, context.function_version) == ("orders", "3")
    assert context.memory_limit_in_mb == 256
    assert context.invoked_function_arn == "arn:hanshu:function::shop:function:orders"
    assert context.invoked_function_arn.split(":")[6] == "orders"  # where Lambda's name is
    assert context.log_group_name == "/hanshu/shop/orders"
    assert context.log_stream_name == "orders-5f7-abc"
    assert context.identity.cognito_identity_id is None
    assert context.identity.cognito_identity_pool_id is None
    assert context.client_context is None
    assert context.get_remaining_time_in_millis() == 0
    assert context.function.handler == "app.handler"  # Function Compute's context.function
    assert (context.invocation_id, context.attempt, context.invocation_type) == ("rid", 1, "Sync")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, ("rid", 1, "Sync")),
        (
            {
                "x-hanshu-invocation-id": "inv-1",
                "X-Hanshu-Attempt": "3",
                "X-Hanshu-Invocation-Type": "async",
            },
            ("inv-1", 3, "Async"),
        ),
        ({"X-Hanshu-Invocation-Type": "Batch"}, ("rid", 1, "Batch")),
        ({"X-Hanshu-Invocation-Type": "Event"}, ("rid", 1, "Event")),
        ({"X-Hanshu-Invocation-Type": "whatever"}, ("rid", 1, "Sync")),
        ({"X-Hanshu-Attempt": "0"}, ("rid", 1, "Sync")),
        ({"X-Hanshu-Attempt": "-2"}, ("rid", 1, "Sync")),
        ({"X-Hanshu-Attempt": "two"}, ("rid", 1, "Sync")),
        ({"X-Hanshu-Attempt": "²"}, ("rid", 1, "Sync")),
        ({"X-Hanshu-Attempt": "9" * 5000}, ("rid", 1, "Sync")),
        ({"X-Hanshu-Invocation-Id": "  "}, ("rid", 1, "Sync")),
        ({"X-Hanshu-Invocation-Id": "a\x00b"}, ("rid", 1, "Sync")),
        ({"X-Hanshu-Invocation-Id": "a" * 1000}, ("rid", 1, "Sync")),
    ],
)
def test_invocation_headers(headers, expected):
    assert invocation_of(CIMultiDict(headers), "rid") == expected


def test_wsgi_environ_joins_repeated_headers_and_cookies():
    environ = build_environ(
        _request(
            headers=[
                ("Cookie", "a=1"),
                ("Cookie", "b=2"),
                ("Accept", "x"),
                ("Accept", "y"),
                ("Content-Type", "text/plain"),
            ],
            body=b"abc",
        ),
        "fn",
        8080,
    )
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["HTTP_ACCEPT"] == "x, y"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "3"
    assert environ["PATH_INFO"] == "/a b"
    assert environ["QUERY_STRING"] == "x=1&x=2&y="


def test_wsgi_environ_drops_header_names_with_underscores():
    # CGI maps '-' and '_' to one key: the underscore spelling would pose as, or be joined
    # to, the header the platform set (gunicorn drops them too).
    environ = build_environ(
        _request(
            headers=[
                ("X_Hanshu_Invocation_Id", "forged"),
                ("X-Hanshu-Invocation-Id", "real"),
                ("Content_Type", "text/evil"),
            ]
        ),
        "fn",
        8080,
    )
    assert environ["HTTP_X_HANSHU_INVOCATION_ID"] == "real"
    assert "CONTENT_TYPE" not in environ
    assert "forged" not in environ.values()


@pytest.mark.parametrize(
    ("header", "prefix"),
    [
        (None, ""),
        ("", ""),
        ("/", ""),
        ("/shop", "/shop"),
        ("/shop/", "/shop"),
        ("/api/v1", "/api/v1"),
        ("/店", "/店"),
        ("/a..b/.well-known", "/a..b/.well-known"),
        ("/" + "a" * (MAX_PREFIX_LENGTH - 1), "/" + "a" * (MAX_PREFIX_LENGTH - 1)),
    ],
)
def test_mount_prefix_accepts_a_plain_path(header, prefix):
    assert mount_prefix(header) == prefix


@pytest.mark.parametrize(
    "header",
    [
        "shop",
        "//evil.example",
        "/shop//x",
        "/\\evil.example",
        "/shop/..",
        "/../etc",
        "/shop/./x",
        "/shop?x=1",
        "/shop#top",
        "/sh op",
        "/shop\r\nSet-Cookie: a=1",
        "/shop\n",
        "/shop\t",
        "/shop\x00",
        "/shop\x7f",
        "/shop\x85",
        "/shop\u2028",
        "/" + "a" * MAX_PREFIX_LENGTH,
    ],
)
def test_mount_prefix_refuses_what_could_leave_the_site_or_break_a_header(header):
    assert mount_prefix(header) == ""


def test_event_paths_with_a_mount_prefix():
    event = build_event(_request(path="/a%2Fb%20c", prefix="/shop"), "rid")
    assert event["path"] == "/a/b c"
    assert event["rawPath"] == "/a%2Fb%20c"
    assert event["requestContext"]["path"] == "/shop/a/b c"
    assert event["requestContext"]["pathPrefix"] == "/shop"
    # API Gateway's stage is what stands in front of ``path``: the mount point.
    assert event["requestContext"]["stage"] == "shop"
    assert event["pathParameters"] == {"proxy": "a/b c"}


def test_wsgi_environ_with_a_mount_prefix_and_the_raw_uri():
    environ = build_environ(_request(path="/%E4%BD%A0/%252e", prefix="/店"), "fn", 8080)
    assert environ["SCRIPT_NAME"] == "/店".encode().decode("latin-1")
    assert environ["PATH_INFO"] == "/你/%2e".encode().decode("latin-1")
    assert environ["RAW_URI"] == environ["REQUEST_URI"] == "/%E4%BD%A0/%252e?x=1&x=2&y="
    assert build_environ(_request(raw_query=""), "fn", 8080)["RAW_URI"] == "/a%20b"


def test_asgi_scope_path_includes_the_root_path():
    scope = build_scope(_request(path="/docs/%252e", prefix="/店"), ("fn", 8080), 0)
    assert scope["root_path"] == "/店"
    assert scope["path"] == "/店/docs/%2e"
    assert scope["raw_path"] == b"/%E5%BA%97/docs/%252e"
    scope = build_scope(_request(path="/docs"), ("fn", 8080), 0)
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == ("", "/docs", b"/docs")


def test_replies():
    assert build_reply("hi").status == 200
    assert build_reply(None).status == 204
    assert build_reply({"a": 1}).body == b'{"a":1}'
    reply = build_reply({"statusCode": 302, "headers": {"Location": "/x", "X-N": 5}})
    assert reply.status == 302
    assert ("Location", "/x") in reply.headers
    assert ("X-N", "5") in reply.headers


@pytest.mark.parametrize(
    ("single", "multi", "sent"),
    [
        # API Gateway merges both maps into one list ...
        ({"A": "single"}, {"A": ["m1", "m2"]}, [("A", "single"), ("A", "m1"), ("A", "m2")]),
        # ... and a name-value pair given in both is sent once, whatever the names' case.
        ({"a": "m1", "B": "b"}, {"A": ["m1", "m2"]}, [("B", "b"), ("A", "m1"), ("A", "m2")]),
        # Mangum's shape: single headers in one map, repeated ones in the other.
        (
            {"content-type": "application/json"},
            {"set-cookie": ["a=1; Path=/", "b=2; Path=/"]},
            [
                ("content-type", "application/json"),
                ("set-cookie", "a=1; Path=/"),
                ("set-cookie", "b=2; Path=/"),
            ],
        ),
        (None, {"X": []}, []),
    ],
)
def test_reply_headers_merge_like_api_gateway(single, multi, sent):
    reply = build_reply({"statusCode": 200, "headers": single, "multiValueHeaders": multi})
    assert reply.headers == sent


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"statusCode": 200, "body": {"a": 1}}, "'body' is a dict"),
        ({"statusCode": 700}, "100 to 599"),
        ({"statusCode": True}, "100 to 599"),
        ({"statusCode": 200, "statuscode": 1}, "unknown keys ['statuscode']"),
        ({"statusCode": 200, "headers": {"A": ["x"]}}, "header 'A' has a list value"),
        ({"statusCode": 200, "body": "***", "isBase64Encoded": True}, "not base64"),
        ({"statusCode": 200, "cookies": "a=1"}, "'cookies' must be a list"),
        ({"statusCode": 200, "multiValueHeaders": {"A": "x"}}, "must be a list of strings"),
        ({"statusCode": 200, "multiValueHeaders": {"A": [None]}}, "header 'A' has a NoneType"),
        (object(), "returned a object"),
        ({"n": float("nan")}, "not JSON serializable"),
        ({"s": {1, 2}}, "not JSON serializable"),
    ],
)
def test_invalid_replies_say_what_is_wrong(value, fragment):
    with pytest.raises(InvalidResponse, match=fragment.replace("[", r"\[").replace("(", r"\(")):
        build_reply(value)


def test_request_ids_are_unique():
    ids = RequestIds()
    assert len({ids.next() for _ in range(1000)}) == 1000


async def test_deadline_expires_only_for_its_own_timeout():
    with pytest.raises(Deadline.Expired), Deadline(0.01):
        await asyncio.sleep(5)
    # A user TimeoutError is not the deadline.
    with pytest.raises(TimeoutError), Deadline(5):
        raise TimeoutError("socket")
    with Deadline(5):
        await asyncio.sleep(0)
    assert asyncio.current_task().cancelling() == 0


def test_the_payload_format_header_is_the_one_the_gateway_sets() -> None:
    from hanshu_api import http_route
    from hanshu_runtime import http_events

    assert http_events.PAYLOAD_FORMAT_HEADER == http_route.PAYLOAD_FORMAT_HEADER
    assert (http_events.PAYLOAD_FORMAT_1, http_events.PAYLOAD_FORMAT_2) == (
        http_route.PAYLOAD_FORMAT_VERSIONS
    )


def test_the_2_0_event_leaves_out_what_api_gateway_leaves_out() -> None:
    from hanshu_runtime.http_events import build_event_v2

    request = HttpRequest("GET", "/", "", [("Host", "api.example.com:8080")], b"", "10.0.0.1")
    event = build_event_v2(request, "r-1")
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "ANY /"
    for absent in ("queryStringParameters", "cookies", "body", "pathParameters"):
        assert absent not in event
    context = event["requestContext"]
    assert (context["domainName"], context["domainPrefix"]) == ("api.example.com:8080", "api")
    assert context["http"]["userAgent"] == ""
    binary = HttpRequest(
        "POST", "/a%20b", "x=1", [("Content-Type", "image/png")], b"\x89PNG", "10.0.0.1"
    )
    event = build_event_v2(binary, "r-2")
    assert (event["rawPath"], event["requestContext"]["http"]["path"]) == ("/a%20b", "/a b")
    assert (event["body"], event["isBase64Encoded"]) == (
        base64.b64encode(b"\x89PNG").decode(),
        True,
    )


def test_2_0_replies_make_any_json_value_a_200_json_body() -> None:
    from hanshu_runtime.replies import JSON_TYPE, build_reply_v2

    for value, body in (
        ({"a": 1}, b'{"a":1}'),
        ([1, 2], b"[1,2]"),
        ("words", b"words"),
        (3, b"3"),
        (True, b"true"),
        (None, b"null"),
    ):
        reply = build_reply_v2(value)
        assert (reply.status, reply.headers, reply.body) == (
            200,
            [("Content-Type", JSON_TYPE)],
            body,
        )
    proxy = build_reply_v2({"statusCode": 302, "headers": {"Location": "/x"}, "cookies": ["a=1"]})
    assert (proxy.status, proxy.headers) == (302, [("Location", "/x"), ("Set-Cookie", "a=1")])
    with pytest.raises(InvalidResponse, match=r"payload format 2\.0"):
        build_reply_v2({1, 2})


@pytest.mark.parametrize(
    ("given", "read"), [(None, "1.0"), ("2.0", "2.0"), (2.0, "2.0"), (1, "1.0")]
)
def test_a_triggers_payload_format_version_is_read_and_checked(given: Any, read: str) -> None:
    from hanshu_api.http_route import parse_http_route

    problems: list[str] = []
    raw = {} if given is None else {"payloadFormatVersion": given}
    assert parse_http_route(raw, problems).payload_format_version == read
    assert problems == []
    parse_http_route({"payloadFormatVersion": "3.0"}, problems)
    assert problems == [
        "spec.http.payloadFormatVersion '3.0' must be one of '1.0', '2.0' (a quoted string)"
    ]


def test_the_most_specific_resource_path_names_the_resource_and_its_parameters() -> None:
    from hanshu_api import http_route
    from hanshu_runtime.http_events import RESOURCES_HEADER, build_event_v2, match_resource

    assert RESOURCES_HEADER == http_route.RESOURCES_HEADER
    listed = "/todos/{id},/{proxy+},/todos/mine,/,/files/{path+},/todos"
    assert match_resource(listed, "/todos/mine") == ("/todos/mine", {})  # literal first
    assert match_resource(listed, "/todos/%E4%BD%A0") == ("/todos/{id}", {"id": "你"})
    assert match_resource(listed, "/todos") == ("/todos", {})
    assert match_resource(listed, "/") == ("/", {})
    assert match_resource(listed, "/files/a/b.txt") == ("/files/{path+}", {"path": "a/b.txt"})
    assert match_resource(listed, "/todos/7/notes") == ("/{proxy+}", {"proxy": "todos/7/notes"})
    assert match_resource("/todos/{id}", "/todos/7/notes") is None
    assert match_resource("/files/{path+}", "/files") is None  # greedy takes one or more
    assert match_resource("", "/todos") is None
    one = HttpRequest("GET", "/todos/7", "", [], b"", "10.0.0.1", resources="/todos/{id}")
    event = build_event(one, "r-1")
    assert (event["resource"], event["requestContext"]["resourcePath"]) == ("/todos/{id}",) * 2
    assert event["pathParameters"] == {"id": "7"}
    one.payload_format = "2.0"
    event = build_event_v2(one, "r-1")
    assert (event["routeKey"], event["pathParameters"]) == ("ANY /todos/{id}", {"id": "7"})


def test_a_triggers_resource_paths_are_checked() -> None:
    from hanshu_api.http_route import parse_http_route

    problems: list[str] = []
    route = parse_http_route({"resources": ["/", "/todos/{id}", "/f/{p+}"]}, problems)
    assert (route.resources, problems) == (("/", "/todos/{id}", "/f/{p+}"), [])
    for bad in ("todos", "/a,b", "/{p+}/x", "/a/", "/{1}", "/caf\u00e9"):
        problems = []
        parse_http_route({"resources": [bad]}, problems)
        assert len(problems) == 1, bad
        assert problems[0].startswith(f"spec.http.resources: {bad!r} must be")
