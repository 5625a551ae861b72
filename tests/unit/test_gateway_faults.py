"""The gateway's refusals as typed faults, each rendered to the body and headers a caller
gets; and the guards (CORS, API key, rate limit), route finding and the filtering of a
replica's reply as pure units."""

from __future__ import annotations

import json

import pytest
from hanshu_api.api_keys import KeyVerifiers
from hanshu_api.models import ApiKeyAuth, Cors, HttpRoute
from hanshu_gateway.faults import (
    CLOSE_CONNECTION,
    BadGateway,
    BadRequest,
    Forbidden,
    FunctionNotReady,
    GatewayFault,
    GatewayTimeout,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    error_reply,
)
from hanshu_gateway.guards import (
    check_api_key,
    check_rate,
    echoable,
    is_preflight,
    preflight_reply,
)
from hanshu_gateway.protect import TokenBucket
from hanshu_gateway.proxy import reply_for_caller
from hanshu_gateway.routes import Route, RouteTable
from hanshu_gateway.routing import Routed, RouteFinder, find_route
from hanshu_gateway.upstream import UpstreamReply


def rendered(fault: GatewayFault, request_id: str = "req-1") -> tuple[int, dict[str, str], bytes]:
    reply = fault.reply(request_id)
    assert reply.body is not None
    return reply.status, dict(reply.headers), bytes(reply.body)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fault", "status", "error_type", "extra_headers"),
    [
        (BadRequest("bad", error_type="InvalidInvocationType"), 400, "InvalidInvocationType", {}),
        (
            Unauthorized(
                "send a key", error_type="MissingApiKey", headers={"WWW-Authenticate": "ApiKey"}
            ),
            401,
            "MissingApiKey",
            {"WWW-Authenticate": "ApiKey"},
        ),
        (Forbidden("no", error_type="InvalidApiKey"), 403, "InvalidApiKey", {}),
        (NotFound("no such invocation"), 404, "NotFound", {}),
        (NotFound("nothing", error_type="NoRoute"), 404, "NoRoute", {}),
        (
            MethodNotAllowed("use GET", allow="GET, HEAD"),
            405,
            "MethodNotAllowed",
            {"Allow": "GET, HEAD"},
        ),
        (
            RequestTimeout("slow", headers=CLOSE_CONNECTION),
            408,
            "RequestTimeout",
            {"Connection": "close"},
        ),
        (
            PayloadTooLarge("big", headers=CLOSE_CONNECTION),
            413,
            "RequestTooLarge",
            {"Connection": "close"},
        ),
        (PayloadTooLarge("big"), 413, "RequestTooLarge", {}),
        (
            TooManyRequests("full", error_type="QueueFull", retry_after="1"),
            429,
            "QueueFull",
            {"Retry-After": "1"},
        ),
        (BadGateway("died", error_type="ReplicaFailed"), 502, "ReplicaFailed", {}),
        (Unavailable("later", error_type="ApiKeysUnavailable"), 503, "ApiKeysUnavailable", {}),
        (
            Unavailable("gone", error_type="ImagePullFailed", retry_after="10"),
            503,
            "ImagePullFailed",
            {"Retry-After": "10"},
        ),
        (FunctionNotReady("not in time"), 503, "FunctionNotReady", {"Retry-After": "5"}),
        (GatewayTimeout("too slow"), 504, "FunctionTimeout", {}),
    ],
)
def test_each_fault_renders_its_status_type_headers_and_body(
    fault: GatewayFault, status: int, error_type: str, extra_headers: dict[str, str]
) -> None:
    got_status, headers, body = rendered(fault)
    assert got_status == status
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Request-Id"] == "req-1"
    assert headers["X-Hanshu-Gateway-Error"] == error_type
    for name, value in extra_headers.items():
        assert headers[name] == value
    # Byte for byte the body the gateway has always sent: the three fields, in this order.
    expected = {"errorType": error_type, "errorMessage": fault.message, "requestId": "req-1"}
    assert body == json.dumps(expected).encode()


def test_detail_fields_follow_the_three_and_never_replace_them() -> None:
    fault = BadRequest(
        "too deep",
        error_type="InvalidBatch",
        detail={"field": "$[0]", "limit": {"name": "depth", "value": 64}, "errorType": "X"},
    )
    _, _, body = rendered(fault)
    assert list(json.loads(body)) == ["errorType", "errorMessage", "requestId", "field", "limit"]
    assert json.loads(body)["errorType"] == "InvalidBatch"


def test_a_refusal_of_an_unparsed_request_has_the_same_shape() -> None:
    reply = error_reply(400, "InvalidHeader", "a bad header", "gw-7")
    assert reply.status == 400
    assert reply.headers["X-Hanshu-Gateway-Error"] == "InvalidHeader"
    assert json.loads(reply.body) == {  # type: ignore[arg-type]
        "errorType": "InvalidHeader",
        "errorMessage": "a bad header",
        "requestId": "gw-7",
    }


def test_each_reply_of_a_fault_has_headers_of_its_own() -> None:
    """The proxy marks a cold start on a fault's headers: that never reaches a constant."""
    fault = PayloadTooLarge("big", headers=CLOSE_CONNECTION)
    fault.headers["X-Hanshu-Cold-Start"] = "true"
    assert dict(CLOSE_CONNECTION) == {"Connection": "close"}


# -- guards ---------------------------------------------------------------------------------


def keyed_route(header: str = "X-API-Key") -> Route:
    auth = ApiKeyAuth(secret_name="keys", header=header)
    return Route("ns", "trg", "fn", HttpRoute(path="/p", auth=auth))


def test_a_route_without_keys_lets_anyone_pass() -> None:
    check_api_key({}, Route("ns", "trg", "fn", HttpRoute()), lambda ns, t: None)


def test_a_missing_key_is_401_with_a_challenge_naming_the_header() -> None:
    with pytest.raises(Unauthorized) as refused:
        check_api_key({}, keyed_route("X-Key"), lambda ns, t: KeyVerifiers.of_keys(["k"]))
    assert refused.value.error_type == "MissingApiKey"
    assert refused.value.headers == {"WWW-Authenticate": 'ApiKey header="X-Key"'}


def test_a_wrong_key_is_403_and_a_right_one_passes() -> None:
    verifiers = KeyVerifiers.of_keys(["right"])
    with pytest.raises(Forbidden) as refused:
        check_api_key({"X-API-Key": "wrong"}, keyed_route(), lambda ns, t: verifiers)
    assert (refused.value.status, refused.value.error_type) == (403, "InvalidApiKey")
    check_api_key({"X-API-Key": "right"}, keyed_route(), lambda ns, t: verifiers)


def test_keys_not_published_yet_are_503_not_a_refusal_of_the_caller() -> None:
    asked: list[tuple[str, str]] = []

    def lookup(namespace: str, trigger: str) -> None:
        asked.append((namespace, trigger))

    with pytest.raises(Unavailable) as refused:
        check_api_key({"X-API-Key": "k"}, keyed_route(), lookup)
    assert (refused.value.status, refused.value.error_type) == (503, "ApiKeysUnavailable")
    assert asked == [("ns", "trg")]


def test_over_the_rate_is_429_saying_when_to_come_back() -> None:
    bucket = TokenBucket(rate=2.0, burst=1)
    check_rate(bucket, now=100.0)
    with pytest.raises(TooManyRequests) as refused:
        check_rate(bucket, now=100.1)
    assert refused.value.error_type == "RateLimited"
    assert refused.value.headers == {"Retry-After": "1"}
    assert refused.value.message == "over this route's limit of 2 requests/s"
    check_rate(bucket, now=100.6)  # a token again after half a second


def test_a_preflight_is_answered_by_the_gateway_or_refused() -> None:
    cors = Cors(allow_origins=("https://app.example",), allow_methods=("GET",))
    assert is_preflight("OPTIONS", {"Access-Control-Request-Method": "GET"})
    assert not is_preflight("OPTIONS", {})
    assert not is_preflight("GET", {"Access-Control-Request-Method": "GET"})
    reply = preflight_reply(
        cors, "https://app.example", {"Access-Control-Request-Headers": "X-A"}, "r-1"
    )
    assert reply.status == 204
    assert reply.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert reply.headers["Access-Control-Allow-Headers"] == "X-A"
    assert reply.headers["X-Request-Id"] == "r-1"
    with pytest.raises(Forbidden) as refused:
        preflight_reply(cors, "https://evil.example", {}, "r-2")
    assert refused.value.error_type == "CorsOriginNotAllowed"
    assert refused.value.message == "origin https://evil.example is not allowed by this Trigger"


def test_only_printable_ascii_is_echoed() -> None:
    assert echoable("https://app.example") == "https://app.example"
    assert echoable(None) is None
    assert echoable("https://caf\u00e9.example") is None
    assert echoable("a\udcffb") is None  # bytes that were not UTF-8
    assert echoable("a\tb") is None


# -- routing --------------------------------------------------------------------------------


def table() -> RouteTable:
    return RouteTable(
        [
            Route("ns", "api", "fn", HttpRoute(path="/api", strip_prefix=True)),
            Route("ns", "ro", "fn", HttpRoute(path="/ro", methods=("GET",))),
        ]
    )


def test_find_route_gives_the_target_the_function_sees() -> None:
    routed = find_route(table(), "/api/items?x=1", "x.io", "POST")
    assert routed.route.trigger == "api"
    assert routed.target.upstream == "/items?x=1"
    assert routed.host == "x.io"


def test_find_route_refuses_with_the_fault_of_each_case() -> None:
    with pytest.raises(NotFound) as no_route:
        find_route(table(), "/elsewhere", "x.io", "GET")
    assert no_route.value.error_type == "NoRoute"
    assert no_route.value.message == "no Trigger serves x.io/elsewhere"
    with pytest.raises(MethodNotAllowed) as wrong_method:
        find_route(table(), "/ro", "x.io", "DELETE")
    assert wrong_method.value.headers == {"Allow": "GET"}
    with pytest.raises(BadRequest) as bad_target:
        find_route(table(), "no-slash", "x.io", "GET")
    assert bad_target.value.status == 400
    with pytest.raises(NotFound):  # a replica's own paths are never public
        find_route(table(), "/api/_hanshu/invoke", "x.io", "POST")


class Routes:
    """What RouteFinder reads of the catalog: the table of the moment."""

    def __init__(self, routes: RouteTable) -> None:
        self.routes = routes


def test_the_route_cache_forgets_when_the_table_changes() -> None:
    catalog = Routes(table())
    finder = RouteFinder(catalog)  # type: ignore[arg-type]
    first = finder.find("/api/a", "x.io", "GET")
    assert finder.find("/api/a", "x.io", "GET") is first
    catalog.routes = RouteTable([Route("ns", "other", "fn2", HttpRoute(path="/api"))])
    moved = finder.find("/api/a", "x.io", "GET")
    assert isinstance(moved, Routed)
    assert moved.route.trigger == "other"
    with pytest.raises(NotFound):  # refusals are not kept
        finder.find("/none", "x.io", "GET")
    with pytest.raises(NotFound):
        finder.find("/none", "x.io", "GET")


# -- the reply a caller gets of a replica ---------------------------------------------------


def test_a_replicas_reply_cannot_pose_as_the_gateway_nor_carry_hop_headers() -> None:
    reply = UpstreamReply(
        200,
        [
            ("Content-Type", "text/plain"),
            ("Connection", "keep-alive"),
            ("Transfer-Encoding", "chunked"),
            ("X-Hanshu-Gateway-Error", "FunctionNotReady"),
            ("X-Hanshu-Draining", "true"),
            ("X-Request-Id", "the-functions-own"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
        ],
        b"hello",
    )
    response = reply_for_caller(reply, "GET", "req-9")
    assert response.status == 200
    assert response.body == b"hello"
    assert list(response.headers.items()) == [
        ("Content-Type", "text/plain"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("X-Request-Id", "req-9"),
    ]


def test_a_head_reply_keeps_the_length_a_get_would_have() -> None:
    reply = UpstreamReply(200, [("Content-Length", "42")], b"")
    assert reply_for_caller(reply, "HEAD", "r").headers["Content-Length"] == "42"
    assert "Content-Length" not in reply_for_caller(reply, "GET", "r").headers
