"""The gateway's pure parts: routing, protections, stats snapshots, the endpoint pool."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hanshu_api.models import ApiKeyAuth, Cors, HttpRoute, TriggerSpec
from hanshu_api.platform import Endpoint
from hanshu_cli.devmode import verifiers_from_manifests
from hanshu_gateway.catalog import Catalog, KnownTrigger
from hanshu_gateway.pool import EndpointPool, NoEndpointInTime, QueueFull
from hanshu_gateway.protect import TokenBucket, preflight_headers
from hanshu_gateway.public_http import encode_reply
from hanshu_gateway.routes import Route, RouteTable
from hanshu_gateway.settings import ConfigError, GatewayConfig, config_from_env
from hanshu_gateway.stats import FunctionStats
from hanshu_gateway.target import BadTarget, Target, parse_target


def at(target: str) -> Target:
    return parse_target(target)


def route(
    name: str, path: str = "/", host: str = "", methods: tuple[str, ...] = (), strip: bool = False
) -> Route:
    return Route(
        "ns", name, name, HttpRoute(host=host, path=path, methods=methods, strip_prefix=strip)
    )


def test_longest_prefix_then_host_then_method():
    table = RouteTable(
        [
            route("root"),
            route("api", "/api"),
            route("v2", "/api/v2"),
            route("shop", "/", host="shop.example.com"),
            route("any-shop", "/", host="*.example.com"),
            route("get-only", "/ro", methods=("GET",)),
        ]
    )
    assert table.match("x.io", at("/"), "GET").route.trigger == "root"
    assert table.match("x.io", at("/api/v2/items"), "GET").route.trigger == "v2"
    assert table.match("x.io", at("/api/v20"), "GET").route.trigger == "api"  # not a prefix
    assert table.match("x.io", at("/apis"), "GET").route.trigger == "root"
    assert table.match("shop.example.com:8080", at("/"), "GET").route.trigger == "shop"
    assert table.match("eu.example.com", at("/"), "GET").route.trigger == "any-shop"
    assert table.match("x.io", at("/ro"), "HEAD").route.trigger == "get-only"
    refused = table.match("x.io", at("/ro/x"), "POST")
    assert refused.route is None
    assert refused.allowed_methods == ("GET",)
    assert RouteTable().match("x.io", at("/"), "GET").route is None


def test_prefixes_match_decoded_segments():
    table = RouteTable([route("root"), route("shop", "/shop/"), route("cafe", "/caf%C3%A9")])
    assert table.match("x.io", at("/sh%6Fp/x"), "GET").route.trigger == "shop"
    assert table.match("x.io", at("/shop"), "GET").route.trigger == "shop"
    assert table.match("x.io", at("/shop%2Fx"), "GET").route.trigger == "root"  # one segment
    assert table.match("x.io", at("/café/menu".replace("é", "%C3%A9")), "GET").route.trigger == (
        "cafe"
    )
    assert table.match("x.io", at("/shop/../cafe"), "GET").route.trigger == "root"


def test_strip_prefix():
    def seen(trigger: Route, path: str) -> str:
        return trigger.upstream_target(at(path)).upstream

    assert seen(route("a", "/api", strip=True), "/api/x/y?q=%0A") == "/x/y?q=%0A"
    assert seen(route("a", "/api", strip=True), "/api") == "/"
    assert seen(route("a", "/api", strip=True), "/api/") == "/"
    assert seen(route("a", "/api", strip=True), "/%61pi/%252e") == "/%252e"  # raw, as sent
    assert seen(route("a", "/api"), "/%61pi/x") == "/%61pi/x"
    assert seen(route("a", "/", strip=True), "/x") == "/x"


def known(name: str, created: str | None, namespace: str = "ns", **http: Any) -> KnownTrigger:
    return KnownTrigger(namespace, name, created, TriggerSpec(name, http=HttpRoute(**http)))


def test_only_the_oldest_claimant_of_a_route_is_served():
    older = known("older", "2026-01-01T00:00:00Z", namespace="team-b", path="/shop")
    newer = known("newer", "2026-02-01T00:00:00Z", namespace="team-a", path="/shop/")
    other = known("other", "2026-03-01T00:00:00Z", path="/shop", methods=("POST",), host="x.io")
    catalog = Catalog(10, lambda namespace, trigger: None)
    conflicts = catalog.set_triggers([newer, older, other])
    assert sorted(r.trigger for r in catalog.routes) == ["older", "other"]
    assert [(loser.name, owner.name) for loser, owner in conflicts] == [("newer", "older")]
    # The owner is gone: the next takes over, judged again on that route only.
    assert catalog.remove_trigger(("team-b", "older")) == []
    assert sorted(r.trigger for r in catalog.routes) == ["newer", "other"]
    assert catalog.conflicts() == []


def test_dev_mode_verifies_keys_from_the_secret_manifests():
    auth = HttpRoute(path="/p", auth=ApiKeyAuth(secret_name="keys", secret_key="api-key"))
    keyed = KnownTrigger("ns", "keyed", None, TriggerSpec("fn", http=auth))
    orphan = KnownTrigger("other", "orphan", None, TriggerSpec("fn", http=auth))
    verifiers = verifiers_from_manifests(
        [keyed, orphan, known("open", None, path="/o")], {("ns", "keys"): {"api-key": "old\nnew\n"}}
    )
    assert set(verifiers) == {("ns", "keyed")}  # no Secret, no verifiers: a 503, as in a cluster
    assert verifiers[("ns", "keyed")].matches("new")
    assert not verifiers[("ns", "keyed")].matches("ne")


def test_token_bucket():
    bucket = TokenBucket(rate=2, burst=2)
    assert bucket.take(0.0) == 0
    assert bucket.take(0.0) == 0
    assert bucket.take(0.0) == pytest.approx(0.5)  # next token in half a second
    assert bucket.take(0.5) == 0


def test_cors_preflight():
    cors = Cors(allow_origins=("https://a.example",), allow_credentials=True)
    headers = preflight_headers(cors, "https://a.example", "X-Custom")
    assert headers is not None
    assert headers["Access-Control-Allow-Origin"] == "https://a.example"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Access-Control-Allow-Headers"] == "X-Custom"
    assert preflight_headers(cors, "https://b.example", None) is None
    star = preflight_headers(Cors(allow_origins=("*",)), "https://b.example", None)
    assert star is not None
    assert star["Access-Control-Allow-Origin"] == "*"


def test_stats_report_serving_and_waiting_apart():
    stats = FunctionStats(in_flight=5, queued=3, arrivals=7, last_completed=10.0)
    report = stats.snapshot(("ns", "f"), now=12.0)
    assert (report.in_flight, report.queued, report.arrivals) == (2, 3, 7)
    assert report.idle_for == 0.0  # busy
    assert stats.arrivals == 0  # counted once
    idle = FunctionStats(last_completed=10.0).snapshot(("ns", "f"), now=12.5)
    assert idle.idle_for == 2.5
    assert FunctionStats().snapshot(("ns", "f"), now=1.0).idle_for is None


def test_stats_report_carries_the_window_outcomes_once():
    stats = FunctionStats()
    stats.record_outcome(0.02, failed=False)
    stats.record_outcome(3.0, failed=True)
    report = stats.snapshot(("ns", "f-v2"), now=1.0)
    assert report.outcomes is not None
    assert (report.outcomes.requests, report.outcomes.errors) == (2, 1)
    assert sum(report.outcomes.latency) == 2
    # The next window starts empty: a window is counted in one report only.
    assert stats.snapshot(("ns", "f-v2"), now=2.0).outcomes is None


async def test_pool_least_loaded_within_concurrency_and_fifo_queue():
    pool = EndpointPool(concurrency=2, queue_limit=2)
    a, b = Endpoint("10.0.0.1", 8080), Endpoint("10.0.0.2", 8080)
    assert pool.is_cold
    waiter = asyncio.ensure_future(pool.acquire(5))
    await asyncio.sleep(0)
    assert pool.queued == 1
    pool.set_ready([a, b])
    first = await waiter
    second = pool.try_acquire()
    assert {first, second} == {a, b}  # least in flight: one each
    assert pool.try_acquire() is not None
    assert pool.try_acquire() is not None
    assert pool.try_acquire() is None  # both at their concurrency of 2
    queued = [asyncio.ensure_future(pool.acquire(5)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(QueueFull):
        await pool.acquire(5)
    pool.release(a)
    assert await queued[0] == a  # handed over in arrival order
    with pytest.raises(NoEndpointInTime):  # every slot busy: a new waiter times out
        await pool.acquire(0.01)
    assert pool.queued == 1  # the timed-out waiter left the queue
    queued[1].cancel()


def test_a_target_is_resolved_and_checked_segment_by_segment():
    target = parse_target("/a/./b/../c%2Fd/%E4%BD%A0?x=%0A#fragment")
    assert target.raw == ("a", "c%2Fd", "%E4%BD%A0")
    assert target.decoded == ("a", "c/d", "你")
    assert target.upstream == "/a/c%2Fd/%E4%BD%A0?x=%0A"  # no fragment, query as sent
    assert parse_target("/a/..").upstream == "/"
    assert parse_target("/a/b/.").upstream == "/a/b/"
    assert parse_target("/a/%2E%2e/b").upstream == "/b"
    assert parse_target("http://h.example:8080").upstream == "/"
    assert parse_target("HTTPS://h.example/x?y").upstream == "/x?y"
    for bad, error_type in (
        ("/a%0d%0aX: 1", "InvalidPath"),
        ("/a%00", "InvalidPath"),
        ("/a%7F", "InvalidPath"),
        ("/a%FF", "InvalidPath"),
        ("/..", "InvalidPath"),
        ("/a/../..", "InvalidPath"),
        ("/a/..%2F..", "InvalidPath"),
        ("/a/%2e%2e%2fb", "InvalidPath"),
        ("/a b", "InvalidPath"),
        ("/a\r\n", "InvalidPath"),
        ("/你", "InvalidPath"),
        ("*", "InvalidTarget"),
        ("example.com:443", "InvalidTarget"),
        ("ftp://h/x", "InvalidTarget"),
    ):
        with pytest.raises(BadTarget) as refused:
            parse_target(bad)
        assert refused.value.error_type == error_type, bad


def test_the_reserved_space_under_any_spelling():
    for path in ("/_hanshu", "/_hanshu/", "/_HANSHU/invoke", "/_hanshu%2Finvoke", "//_hanshu"):
        assert parse_target(path).reserved, path
    assert parse_target("/%5Fhanshu/invoke").reserved
    assert parse_target("/shop/_hanshu/x").without_prefix(1).reserved
    for path in ("/_hanshux", "/x/_hanshu", "/"):
        assert not parse_target(path).reserved, path


def test_a_reply_is_framed_by_the_server_not_by_its_headers():
    from aiohttp import web

    reply = web.Response(
        status=201,
        body=b"made",
        headers=[
            ("X-Kept", "1"),
            ("X-Kept", "2"),
            ("Content-Length", "999"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "upgrade"),
        ],
    )
    wire = encode_reply(reply, keep_alive=True, head_only=False, http10=False)
    head, _, body = wire.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 201 Created"
    assert [line for line in lines if line.startswith("X-Kept")] == ["X-Kept: 1", "X-Kept: 2"]
    assert "Content-Length: 4" in lines
    assert body == b"made"
    assert not [line for line in lines if line.startswith(("Transfer-Encoding", "Connection"))]
    # HEAD: the length of what GET would send, no body; HTTP/1.0 told it may keep the line.
    head_only = encode_reply(reply, keep_alive=True, head_only=True, http10=True)
    assert head_only.endswith(b"Connection: keep-alive\r\n\r\n")
    assert b"Content-Length: 4" in head_only
    passed_on = web.Response(status=200, body=b"", headers={"Content-Length": "42"})
    head = encode_reply(passed_on, keep_alive=True, head_only=True, http10=False)
    assert b"Content-Length: 42\r\n" in head
    assert b"Content-Length: 0\r\n" in encode_reply(
        passed_on, keep_alive=True, head_only=False, http10=False
    )
    closing = encode_reply(
        web.Response(status=204), keep_alive=False, head_only=False, http10=False
    )
    assert b"Content-Length" not in closing
    assert b"Connection: close" in closing
    forged = web.Response(status=200, body=b"", headers={"X-Split": "a"})
    forged.headers["X-Split"] = "a\r\nSet-Cookie: x=1"
    with pytest.raises(ValueError, match="reply header"):
        encode_reply(forged, keep_alive=True, head_only=False, http10=False)


def test_gateway_settings_from_the_environment():
    assert config_from_env({}) == GatewayConfig()
    assert config_from_env({"HANSHU_QUEUE_LIMIT": " 5 "}).queue_limit == 5
    assert config_from_env({"HANSHU_COLD_START_TIMEOUT": "2.5"}).cold_start_timeout == 2.5
    proxies = config_from_env({"HANSHU_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7,"})
    assert [str(n) for n in proxies.trusted_proxies] == ["10.0.0.0/8", "192.168.1.7/32"]
    for name, value in (
        ("HANSHU_QUEUE_LIMIT", "lots"),
        ("HANSHU_GATEWAY_INTERNAL_PORT", "0"),
        ("HANSHU_MAX_BODY_BYTES", "-1"),
        ("HANSHU_HEADER_TIMEOUT", "0"),
        ("HANSHU_STATS_INTERVAL", "inf"),
        ("HANSHU_AUTOSCALER_URL", "ftp://x"),
        ("HANSHU_TRUSTED_PROXIES", "10.0.0.0/8, ingress"),
    ):
        with pytest.raises(ConfigError, match=name):
            config_from_env({name: value})
