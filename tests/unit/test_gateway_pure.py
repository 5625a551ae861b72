"""The gateway's pure parts: routing, protections, stats snapshots, the endpoint pool."""

from __future__ import annotations

import asyncio

import pytest
from hanshu_api.models import Cors, HttpRoute
from hanshu_api.platform import Endpoint
from hanshu_gateway.pool import EndpointPool, NoEndpointInTime, QueueFull
from hanshu_gateway.protect import (
    TokenBucket,
    api_key_matches,
    keys_from_secret_value,
    preflight_headers,
)
from hanshu_gateway.routes import Route, RouteTable
from hanshu_gateway.stats import FunctionStats


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
    assert table.match("x.io", "/", "GET").route.trigger == "root"
    assert table.match("x.io", "/api/v2/items", "GET").route.trigger == "v2"
    assert table.match("x.io", "/api/v20", "GET").route.trigger == "api"  # not a path prefix
    assert table.match("x.io", "/apis", "GET").route.trigger == "root"
    assert table.match("shop.example.com:8080", "/", "GET").route.trigger == "shop"
    assert table.match("eu.example.com", "/", "GET").route.trigger == "any-shop"
    assert table.match("x.io", "/ro", "HEAD").route.trigger == "get-only"
    refused = table.match("x.io", "/ro/x", "POST")
    assert refused.route is None
    assert refused.allowed_methods == ("GET",)
    assert RouteTable().match("x.io", "/", "GET").route is None


def test_strip_prefix():
    assert route("a", "/api", strip=True).upstream_path("/api/x/y") == "/x/y"
    assert route("a", "/api", strip=True).upstream_path("/api") == "/"
    assert route("a", "/api").upstream_path("/api/x") == "/api/x"


def test_api_keys():
    keys = keys_from_secret_value("old\nnew\n\n")
    assert keys == ["old", "new"]
    assert api_key_matches("new", keys)
    assert not api_key_matches("ne", keys)
    assert not api_key_matches("", keys)


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
    assert (report["inFlight"], report["queued"], report["arrivals"]) == (2, 3, 7)
    assert report["idleFor"] == 0.0  # busy
    assert stats.arrivals == 0  # counted once
    idle = FunctionStats(last_completed=10.0).snapshot(("ns", "f"), now=12.5)
    assert idle["idleFor"] == 2.5
    assert FunctionStats().snapshot(("ns", "f"), now=1.0)["idleFor"] is None


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
