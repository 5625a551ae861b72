"""Routing by version and alias (issue 28): the cluster gateway against kmock, real runtime
processes as each version's replicas. A Function 'shop' with versions 1 and 2 published,
alias 'live' = 1 with 30 % to 2, and Triggers on the alias, on version 2 and on $LATEST."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from hanshu_api.kube import KubeClient, path_for
from hanshu_api.versions import (
    STICKY_COOKIE,
    STICKY_HEADER,
    VERSION_HEADER,
    AliasRouting,
    pick_version,
    sticky_draw,
    version_key,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.support.helpers import eventually
from tests.support.kube_gateway import (
    CODE,
    NS,
    create,
    endpoint_slice,
    fetch,
    function,
    function_version,
    kube_client,
    running_gateway,
    status_is,
    trigger,
)
from tests.support.servers import recording_endpoint

TEMPLATE = {"handler": "handlers.version", "code": {"image": "x"}, "concurrency": 8}
ALIASES = [
    {"name": "live", "version": 1, "additionalVersion": 2, "additionalWeight": 30},
    {"name": "old", "version": 9},  # never published
]


def routed(name: str, path: str, **ref: Any) -> dict[str, Any]:
    """An HTTP Trigger on ``shop`` whose functionRef names a version or an alias."""
    body = trigger(name, "shop", path=path)
    body["spec"]["functionRef"].update(ref)
    return body


@dataclass
class Shop:
    url: str
    internal: str
    runtime_admin: dict[str, int]  # version label -> the runtime's admin port
    reports: list[dict[str, Any]]
    kube: KubeClient


@pytest.fixture
async def shop(kmock, tmp_path, runtime_factory) -> AsyncIterator[Shop]:
    replicas = {
        "LATEST": runtime_factory(
            CODE, "handlers.version", HANSHU_FUNCTION_NAME="shop", HANSHU_FUNCTION_VERSION="7"
        ),
        **{
            str(n): runtime_factory(
                CODE,
                "handlers.version",
                HANSHU_FUNCTION_NAME="shop",
                HANSHU_FUNCTION_VERSION=str(n),
                HANSHU_PUBLISHED_VERSION=str(n),
            )
            for n in (1, 2)
        },
    }
    async with (
        recording_endpoint("/stats") as (sink, reports),
        kube_client(kmock, tmp_path) as (kube, kubeconfig),
    ):
        await create(kube, function("shop", **TEMPLATE, aliases=ALIASES))
        for n in (1, 2):
            await create(kube, function_version("shop", n, TEMPLATE))
            await create(kube, endpoint_slice(replicas[str(n)].port, True, version_key("shop", n)))
        await create(kube, endpoint_slice(replicas["LATEST"].port, True, "shop"))
        await create(kube, routed("live", "/live", alias="live"))
        await create(kube, routed("two", "/two", version=2))
        await create(kube, routed("old", "/old", alias="old"))
        await create(kube, routed("ghost", "/ghost", alias="ghost"))
        await create(kube, trigger("latest", "shop", path="/latest"))
        async with running_gateway(
            kubeconfig,
            HANSHU_WATCH_NAMESPACES=NS,
            HANSHU_AUTOSCALER_URL=sink.removesuffix("/stats"),
            HANSHU_COLD_START_TIMEOUT="2",
        ) as (url, internal):
            await eventually(lambda: status_is(f"{url}/live", 200), timeout=20)
            await eventually(lambda: status_is(f"{url}/two", 200), timeout=20)
            admin = {k: r.admin_port for k, r in replicas.items()}
            yield Shop(url, internal, admin, reports, kube)


async def _call(
    http: aiohttp.ClientSession, url: str, **headers: str
) -> tuple[int, str | None, Any]:
    async with http.get(url, headers=headers) as reply:
        body = await reply.json(content_type=None)
        return reply.status, reply.headers.get(VERSION_HEADER), body


async def test_an_alias_splits_by_its_weight_and_says_which_version_served(shop: Shop) -> None:
    served: collections.Counter[str] = collections.Counter()
    limit = asyncio.Semaphore(16)
    async with aiohttp.ClientSession() as http:

        async def one() -> None:
            async with limit:
                status, header, body = await _call(http, f"{shop.url}/live")
            assert status == 200
            # The header names the version whose replica answered (its context says so).
            assert header == body["version"], (header, body)
            assert body["function"] == "shop"
            served[header] += 1

        await asyncio.gather(*(one() for _ in range(2000)))
    assert set(served) == {"1", "2"}
    share = served["2"] / 2000 * 100
    assert 25 <= share <= 35, served  # weight 30 %, within 5 points


async def test_sticky_callers_stay_on_one_version(shop: Shop) -> None:
    seen: dict[str, set[str | None]] = collections.defaultdict(set)
    async with aiohttp.ClientSession() as http:
        for caller in range(40):
            for _ in range(8):
                _, by_header, _ = await _call(
                    http, f"{shop.url}/live", **{STICKY_HEADER: f"user-{caller}"}
                )
                _, by_cookie, _ = await _call(
                    http, f"{shop.url}/live", Cookie=f"a=b; {STICKY_COOKIE}=user-{caller}"
                )
                seen[f"user-{caller}"] |= {by_header, by_cookie}
    assert all(len(versions) == 1 for versions in seen.values()), seen
    # Not everyone on one version: the sticky value is hashed into the split.
    assert {v for versions in seen.values() for v in versions} == {"1", "2"}


async def test_a_version_target_and_latest(shop: Shop) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(20):
            assert await _call(http, f"{shop.url}/two") == (
                200,
                "2",
                {"version": "2", "function": "shop"},
            )
        status, header, body = await _call(http, f"{shop.url}/latest")
    # $LATEST is the Function as it is: no version header, and its replicas' own version
    # is the Function's generation (not a published number).
    assert (status, header, body["version"]) == (200, None, "7")


async def test_a_missing_alias_or_version_is_refused_by_name(shop: Shop) -> None:
    status, body = await fetch(f"{shop.url}/old")
    error = json.loads(body)
    assert status == 503
    assert error["errorType"] == "VersionNotFound"
    assert "alias 'old'" in error["errorMessage"]
    assert "version 9" in error["errorMessage"]
    status, body = await fetch(f"{shop.url}/ghost")
    error = json.loads(body)
    assert status == 503
    assert error["errorType"] == "AliasNotFound"
    assert "no alias 'ghost'" in error["errorMessage"]
    # An async call is never stored for it: 404 at once.
    status, body = await fetch(f"{shop.url}/old", **{"X-Hanshu-Invocation-Type": "Async"})
    assert status == 404
    assert json.loads(body)["errorType"] == "VersionNotFound"


async def _samples(url: str, name: str) -> list[dict[str, str]]:
    _, page = await fetch(f"{url}/metrics")
    return [
        {**sample.labels, "value": str(sample.value)}
        for family in text_string_to_metric_families(page.decode())
        for sample in family.samples
        if sample.name == name
    ]


async def test_metrics_carry_the_version(shop: Shop) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/two", "/latest", "/old"):
            with contextlib.suppress(aiohttp.ContentTypeError):
                await _call(http, f"{shop.url}{path}")
    requests = await _samples(shop.internal, "hanshu_gateway_requests_total")
    by_trigger = {(s["trigger"], s["code"]): s for s in requests if s["function"] == "shop"}
    assert by_trigger[("two", "200")]["version"] == "2"
    assert by_trigger[("latest", "200")]["version"] == "LATEST"
    assert by_trigger[("old", "503")]["version"] == ""  # refused before any version ran
    durations = await _samples(shop.internal, "hanshu_gateway_request_duration_seconds_count")
    assert {s["version"] for s in durations if s["function"] == "shop"} >= {"2", "LATEST"}
    billed = await _samples(shop.internal, "hanshu_gateway_gb_seconds_total")
    assert {s["version"] for s in billed if s["function"] == "shop"} >= {"2", "LATEST"}
    # The runtime labels its own metrics too, with the Function's name.
    invocations = await _samples(
        f"http://127.0.0.1:{shop.runtime_admin['2']}", "hanshu_runtime_invocations_total"
    )
    ran = [s for s in invocations if s["outcome"] == "success" and float(s["value"]) > 0]
    assert [(s["function"], s["version"]) for s in ran] == [("shop", "2")]
    latest = await _samples(
        f"http://127.0.0.1:{shop.runtime_admin['LATEST']}", "hanshu_runtime_in_flight"
    )
    assert [s["version"] for s in latest] == ["LATEST"]


async def test_each_version_scales_on_its_own(shop: Shop) -> None:
    """Traffic to version 2 only: the autoscaler is told of version 2's key alone, and a
    version whose replicas are gone (scaled to zero) is woken by its own key."""
    async with aiohttp.ClientSession() as http:
        # A report with no arrivals: the fixture's own first calls are behind us.
        await eventually(
            lambda: (
                shop.reports and not any(f.get("arrivals") for f in shop.reports[-1]["functions"])
            ),
            message="a quiet report",
        )
        before = len(shop.reports)
        for _ in range(5):
            await _call(http, f"{shop.url}/two")

        def reported() -> set[str]:
            return {
                f["name"]
                for report in shop.reports[before:]
                for f in report["functions"]
                if f.get("arrivals") or f.get("inFlight")
            }

        await eventually(lambda: version_key("shop", 2) in reported())
        assert version_key("shop", 1) not in reported()
        assert "shop" not in reported()

        # Version 1 at zero replicas: a caller the alias sends there is cold, and the
        # autoscaler is asked to wake version 1's Deployment, nothing else.
        await shop.kube.merge_patch(
            path_for(
                "discovery.k8s.io/v1", "endpointslices", NS, f"{version_key('shop', 1)}-abcde"
            ),
            {"endpoints": []},
        )
        live = AliasRouting("live", 1, 2, 30)
        caller = next(
            f"user-{n}"
            for n in range(100)
            if pick_version(live, sticky_draw(f"user-{n}", "live")) == 1
        )
        before = len(shop.reports)
        status, _, _ = await _call(http, f"{shop.url}/live", **{STICKY_HEADER: caller})
        assert status == 503  # nothing scaled it within HANSHU_COLD_START_TIMEOUT
        cold = {c["name"] for report in shop.reports[before:] for c in report["cold"]}
        assert cold == {version_key("shop", 1)}
        # Version 2 is served warm meanwhile.
        assert (await _call(http, f"{shop.url}/two"))[0] == 200
