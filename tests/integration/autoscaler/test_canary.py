"""Canaries end to end through the canary controller's real inputs and outputs: the
autoscaler as its own process against kmock (no operator running), each version served by
a real runtime process, traffic through the alias routed by the Function's effective
routing and reported by the gateway's own stats reporter (devtools/alias_traffic.py: the
gateway's routing by alias is issue 28's data-plane half, built beside this). One canary
promotes through its steps; one whose new version answers 500 to one call in five rolls
back: the traffic ends on the old version, and the Warning Event and the status entry
carry the threshold and the figures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hanshu_api import API_VERSION, FUNCTION_PLURAL

from devtools.alias_traffic import (
    FLAKY_HANDLER,
    GOOD_HANDLER,
    AliasTraffic,
    VersionRuntime,
    start_version,
)
from devtools.autoscaler_process import LEASE_NAME, AutoscalerProcess
from tests.support.autoscaler_cluster import FN, LEASES, NAMESPACE, Cluster, deployment_body
from tests.support.helpers import eventually

Start = Callable[..., AutoscalerProcess]


def canary_function(name: str, **canary: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {
            "handler": "index.handler",
            "code": {"inline": {"index.py": GOOD_HANDLER}},
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


@pytest.fixture
async def versions(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[dict[int, str]]]]:
    """Starts a Function's version 1 (good) and version 2 (good, or one call in five 500)."""
    started: list[VersionRuntime] = []

    async def start(name: str, flaky: bool = False) -> dict[int, str]:
        pair = {
            1: start_version(tmp_path, name, 1, GOOD_HANDLER),
            2: start_version(tmp_path, name, 2, FLAKY_HANDLER if flaky else GOOD_HANDLER),
        }
        started.extend(pair.values())
        for runtime in pair.values():
            await asyncio.to_thread(runtime.wait_ready)
        return {version: runtime.url for version, runtime in pair.items()}

    yield start
    for runtime in started:
        await asyncio.to_thread(runtime.stop)


async def set_up(
    cluster: Cluster, autoscalers: Start, name: str, pod: str = "autoscaler-a", **canary: Any
) -> AutoscalerProcess:
    await cluster.create(API_VERSION, FUNCTION_PLURAL, canary_function(name, **canary))
    for key in (name, f"{name}-v1", f"{name}-v2"):
        await cluster.create("apps/v1", "deployments", deployment_body(key, replicas=1))
    return autoscalers(pod, HANSHU_CANARY_INTERVAL_SECONDS="0.25")


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


async def test_a_healthy_canary_promotes_through_its_steps(
    cluster: Cluster, autoscalers: Start, versions: Any
):
    replica = await set_up(cluster, autoscalers, "shop", steps=[20, 50, 100])
    traffic = AliasTraffic(
        lambda: cluster.object(FN, "shop"),
        NAMESPACE,
        "shop",
        "live",
        await versions("shop"),
        replica.url,
        report_interval=0.25,
    )
    await eventually(lambda: phase(cluster, "shop") == "Progressing", message="the start")
    assert traffic.routing().additional_weight == 20
    stop = asyncio.Event()
    running = asyncio.create_task(traffic.run(rate=40, stop=stop))
    try:
        weights: list[int] = []

        def promoted() -> bool:
            weight = traffic.routing().additional_weight
            if not weights or weights[-1] != weight:
                weights.append(weight)
            return phase(cluster, "shop") == "Promoted"

        await eventually(promoted, timeout=30, message="the promotion")
        promoted_at = time.monotonic()
        await eventually(
            lambda: (
                traffic.share(2, since=promoted_at) == 1.0
                and len([s for s in traffic.served if s.at >= promoted_at]) >= 20
            ),
            message="all of the alias's requests on version 2",
        )
    finally:
        stop.set()
        await running
    # Through every step, in order: the alias's split as the gateway read it.
    assert weights == [20, 50, 100]
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
    # controller's entries go (the alias routes by its spec again).
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
    assert traffic.routing().version == 2


async def test_a_failing_canary_rolls_back_to_the_old_version(
    cluster: Cluster, autoscalers: Start, versions: Any
):
    replica = await set_up(
        cluster, autoscalers, "cart", steps=[20, 50, 100], interval="30s", maxErrorRate=5
    )
    traffic = AliasTraffic(
        lambda: cluster.object(FN, "cart"),
        NAMESPACE,
        "cart",
        "live",
        await versions("cart", flaky=True),
        replica.url,
        report_interval=0.25,
    )
    await eventually(lambda: phase(cluster, "cart") == "Progressing", message="the start")
    stop = asyncio.Event()
    running = asyncio.create_task(traffic.run(rate=60, stop=stop))
    try:
        await eventually(
            lambda: phase(cluster, "cart") == "RolledBack", timeout=30, message="the rollback"
        )
        rolled_at = time.monotonic()
        await eventually(
            lambda: len([s for s in traffic.served if s.at >= rolled_at]) >= 30,
            message="30 requests after the rollback",
        )
    finally:
        stop.set()
        await running
    # The traffic ends on the old version: every request since the rollback.
    assert traffic.share(1, since=rolled_at) == 1.0
    assert traffic.routing().additional_weight == 0
    # Before it, version 2 took its share and answered 500 to some.
    assert any(s.version == 2 and s.status == 500 for s in traffic.served if s.at < rolled_at)
    assert cluster.object(FN, "cart")["status"]["aliases"] == [{"name": "live", "version": 1}]
    entry = canary_entry(cluster, "cart")
    assert entry is not None
    assert entry["message"].startswith("rolled back to version 1 at 20% on version 2: error rate")
    assert "over 5.0% in the last" in entry["message"]
    assert entry["requests"] >= 10
    assert entry["errorRate"] > 0.05
    (event,) = cluster.events("CanaryRolledBack")
    assert event["type"] == "Warning"
    assert event["message"] == f"alias 'live': {entry['message']}"
    assert event["involvedObject"]["name"] == "cart"

    # A change of the canary's spec (here, its steps) starts it again from the first step.
    aliases = cluster.object(FN, "cart")["spec"]["aliases"]
    aliases[0]["canary"]["steps"] = [10, 100]
    await cluster.patch(API_VERSION, FUNCTION_PLURAL, "cart", {"spec": {"aliases": aliases}})
    await eventually(lambda: phase(cluster, "cart") == "Progressing", message="a new start")
    assert traffic.routing().additional_weight == 10


async def test_a_new_leader_carries_the_canary_on_from_its_step(
    cluster: Cluster, autoscalers: Start, versions: Any
):
    """The leader dies at the second step: the standby takes over and goes on from there
    (the status says where), never back to the first step's split."""
    first = await set_up(cluster, autoscalers, "shop", steps=[20, 50, 100])
    await eventually(lambda: holder(cluster) == first.identity, message="a leader")
    second = autoscalers("autoscaler-b", HANSHU_CANARY_INTERVAL_SECONDS="0.25")
    # The traffic's reports go to the standby, which passes them on while it is one (as
    # the autoscaler's Service would send them to either replica).
    traffic = AliasTraffic(
        lambda: cluster.object(FN, "shop"),
        NAMESPACE,
        "shop",
        "live",
        await versions("shop"),
        second.url,
        report_interval=0.25,
    )
    await eventually(lambda: phase(cluster, "shop") == "Progressing", message="the start")
    stop = asyncio.Event()
    running = asyncio.create_task(traffic.run(rate=40, stop=stop))
    weights: list[int] = []

    def weight_is(expected: int) -> bool:
        weight = traffic.routing().additional_weight
        if not weights or weights[-1] != weight:
            weights.append(weight)
        return weight == expected

    try:
        await eventually(lambda: weight_is(50), timeout=30, message="the second step")
        await asyncio.to_thread(first.kill)
        await eventually(
            lambda: holder(cluster) == second.identity, timeout=30, message="the takeover"
        )
        await eventually(
            lambda: weight_is(100) and phase(cluster, "shop") == "Promoted",
            timeout=30,
            message="the promotion by the new leader",
        )
    finally:
        stop.set()
        await running
    assert weights == [20, 50, 100]
