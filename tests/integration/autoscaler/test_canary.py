"""Canaries end to end, the three parts of issue 28 together: the autoscaler as its own
process against kmock (no operator running: the test creates the Function, its published
versions, their Deployments and EndpointSlices as the operator would), each version served
by a real runtime process, and the cluster gateway (KubeGateway, in this process) routing an
HTTP Trigger on the alias by the Function's effective routing, which it reads from its watch
of the Function (the canary controller's ``status.aliases``), and reporting its own figures
to the autoscaler. What is asserted is what a caller sees at the gateway: the version in the
``X-Hanshu-Version`` reply header. One canary promotes through its steps; one whose new
version answers 500 to one call in five rolls back: every request then goes to the old
version, and the Warning Event and the status entry carry the threshold and the figures."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hanshu_api import API_VERSION, FUNCTION_PLURAL
from hanshu_api.versions import FUNCTION_VERSION_PLURAL, version_key

from devtools.autoscaler_process import LEASE_NAME, AutoscalerProcess
from devtools.canary_traffic import (
    FLAKY_HANDLER,
    GOOD_HANDLER,
    GatewayTraffic,
    VersionRuntime,
    start_version,
)
from tests.support.autoscaler_cluster import FN, LEASES, NAMESPACE, Cluster, deployment_body
from tests.support.helpers import eventually
from tests.support.kube_gateway import (
    endpoint_slice,
    function_version,
    running_gateway,
    status_is,
    trigger,
)

Start = Callable[..., AutoscalerProcess]
TEMPLATE = {"handler": "index.handler", "code": {"image": "x"}}


def canary_function(name: str, **canary: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {
            **TEMPLATE,
            "aliases": [
                {
                    "name": "live",
                    "version": 1,
                    "additionalVersion": 2,
                    "canary": {"interval": "1s", "minRequests": 10, **canary},
                }
            ],
        },
    }


@dataclass
class Canary:
    name: str
    traffic: GatewayTraffic  # requests to the gateway's route on alias 'live'
    autoscaler: AutoscalerProcess  # the first, and leader
    standby: AutoscalerProcess | None


Deploy = Callable[..., Awaitable[Canary]]


@pytest.fixture
async def deploy(cluster: Cluster, autoscalers: Start, tmp_path: Path) -> AsyncIterator[Deploy]:
    """Sets a canary up: the Function, versions 1 (good) and 2 (good, or one call in five
    500) published and served by runtime processes, an autoscaler that leads (and with
    ``standby`` a second one), and the gateway, whose stats reports go to the last one
    started (a standby passes them on to the leader, as the autoscaler's Service would send
    them to either replica)."""
    runtimes: list[VersionRuntime] = []
    async with contextlib.AsyncExitStack() as stack:

        async def start(
            name: str,
            flaky: bool = False,
            standby: bool = False,
            **canary: Any,
        ) -> Canary:
            pair = {
                1: start_version(tmp_path, name, 1, GOOD_HANDLER),
                2: start_version(tmp_path, name, 2, FLAKY_HANDLER if flaky else GOOD_HANDLER),
            }
            runtimes.extend(pair.values())
            await cluster.create(API_VERSION, FUNCTION_PLURAL, canary_function(name, **canary))
            await cluster.create(
                API_VERSION, FUNCTION_VERSION_PLURAL, function_version(name, 1, TEMPLATE)
            )
            await cluster.create(
                API_VERSION, FUNCTION_VERSION_PLURAL, function_version(name, 2, TEMPLATE)
            )
            for key in (name, version_key(name, 1), version_key(name, 2)):
                await cluster.create("apps/v1", "deployments", deployment_body(key, replicas=1))
            for version, runtime in pair.items():
                await asyncio.to_thread(runtime.wait_ready)
                slice_ = endpoint_slice(runtime.port, True, version_key(name, version))
                await cluster.create("discovery.k8s.io/v1", "endpointslices", slice_)
            route = trigger("live", name, path=f"/{name}")
            route["spec"]["functionRef"]["alias"] = "live"
            await cluster.create(API_VERSION, "triggers", route)
            leader = autoscalers("autoscaler-a", HANSHU_CANARY_INTERVAL_SECONDS="0.25")
            await eventually(lambda: holder(cluster) == leader.identity, message="a leader")
            second = (
                autoscalers("autoscaler-b", HANSHU_CANARY_INTERVAL_SECONDS="0.25")
                if standby
                else None
            )
            url, _ = await stack.enter_async_context(
                running_gateway(
                    tmp_path / "kubeconfig",
                    HANSHU_WATCH_NAMESPACES=NAMESPACE,
                    HANSHU_AUTOSCALER_URL=(second or leader).url,
                    HANSHU_STATS_INTERVAL="0.25",
                )
            )
            await eventually(lambda: status_is(f"{url}/{name}", 200), timeout=20)
            return Canary(name, GatewayTraffic(f"{url}/{name}"), leader, second)

        yield start
    for runtime in runtimes:
        await asyncio.to_thread(runtime.stop)


def holder(cluster: Cluster) -> str:
    try:
        return str(cluster.object(LEASES, LEASE_NAME)["spec"]["holderIdentity"])
    except KeyError:
        return ""


def canary_entry(cluster: Cluster, name: str) -> dict[str, Any] | None:
    status = cluster.object(FN, name).get("status") or {}
    return next(iter(status.get("canaries") or []), None)


def phase(cluster: Cluster, name: str) -> str | None:
    entry = canary_entry(cluster, name)
    return None if entry is None else entry["phase"]


def status_weight(cluster: Cluster, name: str) -> int | None:
    """The additional version's share the controller wrote (None: no entry of its own)."""
    entries = (cluster.object(FN, name).get("status") or {}).get("aliases") or []
    return next((int(e.get("additionalWeight", 0)) for e in entries), None)


@contextlib.asynccontextmanager
async def running(traffic: GatewayTraffic, rate: float) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(traffic.run(rate=rate, stop=stop))
    try:
        yield
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def weight_changes(cluster: Cluster, name: str) -> AsyncIterator[list[tuple[float, int]]]:
    """(when, weight) each time the controller's written split for the alias changed."""
    changes: list[tuple[float, int]] = []

    async def follow() -> None:
        while True:
            weight = status_weight(cluster, name)
            if weight is not None and (not changes or changes[-1][1] != weight):
                changes.append((time.monotonic(), weight))
            await asyncio.sleep(0.01)

    task = asyncio.create_task(follow())
    try:
        yield changes
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# The gateway's watch carries a status change to its routing within this (on loopback it
# takes milliseconds; the margin is for a loaded machine).
WATCH_MARGIN = 1.0


async def test_a_healthy_canary_promotes_through_its_steps(cluster: Cluster, deploy: Deploy):
    shop = await deploy("shop", steps=[20, 50, 100], interval="3s")
    traffic = shop.traffic
    async with weight_changes(cluster, "shop") as changes, running(traffic, rate=50):
        await eventually(
            lambda: phase(cluster, "shop") == "Promoted", timeout=60, message="the promotion"
        )
        promoted_at = time.monotonic()
        await eventually(
            lambda: len(traffic.since(promoted_at + WATCH_MARGIN)) >= 30,
            message="30 requests after the promotion",
        )
    assert [weight for _, weight in changes] == [20, 50, 100]
    # At the gateway, each step's share of the requests went to version 2 (from a margin
    # after the split was written to the next one), never a request failed.
    shares = []
    for (start, _), (end, _) in itertools.pairwise(changes):
        window = [s for s in traffic.since(start + WATCH_MARGIN) if s.at < end]
        assert len(window) >= 40, (start, end, len(window))
        shares.append(sum(s.version == 2 for s in window) / len(window))
    assert 0.05 <= shares[0] <= 0.40, shares  # 20 %
    assert 0.30 <= shares[1] <= 0.70, shares  # 50 %
    assert traffic.share(2, since=changes[-1][0] + WATCH_MARGIN) == 1.0
    assert {s.status for s in traffic.served} == {200}
    assert all(s.version in (1, 2) for s in traffic.served)

    entry = canary_entry(cluster, "shop")
    assert entry is not None
    assert entry["message"].startswith("promoted: version 2 takes 100% after 3 healthy step(s)")
    assert cluster.object(FN, "shop")["status"]["aliases"] == [
        {"name": "live", "version": 1, "additionalVersion": 2, "additionalWeight": 100}
    ]
    stepped = [e["message"] for e in cluster.events("CanaryStepped")]
    assert len(stepped) == 2
    assert any("takes 50% (step 2 of 3)" in message for message in stepped)
    assert cluster.events("CanaryPromoted")
    assert not cluster.events("CanaryRolledBack")

    # The owner makes it final: the alias points at version 2 with no canary. The
    # controller's entries go, and the gateway routes by the spec again (version 2).
    await cluster.patch(
        API_VERSION,
        FUNCTION_PLURAL,
        "shop",
        {"spec": {"aliases": [{"name": "live", "version": 2}]}},
    )

    def cleared() -> bool:
        status = cluster.object(FN, "shop").get("status") or {}
        return status.get("aliases") == [] and status.get("canaries") == []

    await eventually(cleared, message="status.aliases and status.canaries emptied")
    async with aiohttp.ClientSession() as http:
        for _ in range(20):
            assert (await traffic.call(http)).version == 2


async def test_a_failing_canary_rolls_back_to_the_old_version(cluster: Cluster, deploy: Deploy):
    cart = await deploy("cart", flaky=True, steps=[20, 50, 100], interval="30s", maxErrorRate=5)
    traffic = cart.traffic
    await eventually(lambda: status_weight(cluster, "cart") == 20, message="the first step")
    async with running(traffic, rate=60):
        await eventually(
            lambda: phase(cluster, "cart") == "RolledBack", timeout=30, message="the rollback"
        )
        rolled_at = time.monotonic()
        await eventually(
            lambda: len(traffic.since(rolled_at + WATCH_MARGIN)) >= 30,
            message="30 requests after the rollback",
        )
    # Before it, version 2 took its share through the gateway and answered 500 to some
    # (passed on to the caller as the replica answered).
    before = [s for s in traffic.served if s.at < rolled_at]
    assert any(s.version == 2 and s.status == 500 for s in before)
    assert all(s.status == 200 for s in before if s.version == 1)
    # The traffic ends on the old version: every request since the gateway's watch
    # carried the rollback.
    after = traffic.since(rolled_at + WATCH_MARGIN)
    assert {(s.version, s.status) for s in after} == {(1, 200)}
    assert cluster.object(FN, "cart")["status"]["aliases"] == [{"name": "live", "version": 1}]
    entry = canary_entry(cluster, "cart")
    assert entry is not None
    assert entry["message"].startswith("rolled back to version 1 at 20% on version 2: error rate")
    assert "over 5.0% in the last" in entry["message"]
    # The figures are the gateway's own counts of version 2's requests: at least the
    # canary's minimum, with about one in five failed.
    assert entry["requests"] >= 10
    assert entry["errorRate"] > 0.05
    failed = round(entry["errorRate"] * entry["requests"])
    assert f"in the last {entry['requests']} requests ({failed} failed)" in entry["message"]
    (event,) = cluster.events("CanaryRolledBack")
    assert event["type"] == "Warning"
    assert event["message"] == f"alias 'live': {entry['message']}"
    assert event["involvedObject"]["name"] == "cart"

    # A change of the canary's spec (here, its steps) starts it again from the first step.
    aliases = cluster.object(FN, "cart")["spec"]["aliases"]
    aliases[0]["canary"]["steps"] = [10, 100]
    await cluster.patch(API_VERSION, FUNCTION_PLURAL, "cart", {"spec": {"aliases": aliases}})
    await eventually(lambda: phase(cluster, "cart") == "Progressing", message="a new start")
    assert status_weight(cluster, "cart") == 10


async def test_a_new_leader_carries_the_canary_on_from_its_step(cluster: Cluster, deploy: Deploy):
    """The leader dies at the second step: the standby takes over and goes on from there
    (the status says where), never back to the first step's split."""
    shop = await deploy("shop", steps=[20, 50, 100], standby=True)
    first, second = shop.autoscaler, shop.standby
    assert second is not None
    async with weight_changes(cluster, "shop") as changes, running(shop.traffic, rate=40):
        await eventually(
            lambda: status_weight(cluster, "shop") == 50, timeout=30, message="the second step"
        )
        await asyncio.to_thread(first.kill)
        await eventually(
            lambda: holder(cluster) == second.identity, timeout=30, message="the takeover"
        )
        await eventually(
            lambda: phase(cluster, "shop") == "Promoted",
            timeout=30,
            message="the promotion by the new leader",
        )
        promoted_at = time.monotonic()
        await eventually(
            lambda: len(shop.traffic.since(promoted_at + WATCH_MARGIN)) >= 20,
            message="20 requests after the promotion",
        )
    assert [weight for _, weight in changes] == [20, 50, 100]
    assert shop.traffic.share(2, since=promoted_at + WATCH_MARGIN) == 1.0
