"""Two Triggers claiming one route: the oldest owns it, in any namespace; when it goes, the
next oldest takes over. In a cluster (kmock) and in the developer mode (manifest order)."""

from __future__ import annotations

import json
import urllib.request

from hanshu_api import API_VERSION, TRIGGER_PLURAL
from hanshu_api.kube import path_for

from tests.support.dev_platform import function as dev_function
from tests.support.dev_platform import trigger as dev_trigger
from tests.support.helpers import eventually
from tests.support.kube_gateway import (
    CODE,
    create,
    endpoint_slice,
    fetch,
    function,
    kube_client,
    running_gateway,
    trigger,
)


async def _served_by(url: str, expected: str) -> bool:
    status, body = await fetch(f"{url}/cart", Host="shop.example.com")
    return status == 200 and json.loads(body)["context"]["function_name"] == expected


async def test_the_oldest_trigger_owns_a_route_across_namespaces(kmock, tmp_path, runtime_factory):
    async with kube_client(kmock, tmp_path) as (kube, kubeconfig):
        for team in ("team-a", "team-b"):
            runtime = runtime_factory(CODE, "handlers.echo", HANSHU_FUNCTION_NAME=f"{team}-shop")
            await create(kube, function("shop", namespace=team))
            await create(kube, endpoint_slice(runtime.port, True, "shop", namespace=team))
        # team-b's is older: its creation time decides, neither the names (team-a/newer sorts
        # first) nor the order the API lists them in (newer was stored first).
        route = {"host": "shop.example.com", "path": "/"}
        await create(kube, trigger("newer", "shop", "team-a", "2026-02-01T00:00:00Z", **route))
        await create(kube, trigger("older", "shop", "team-b", "2026-01-01T00:00:00Z", **route))
        async with running_gateway(kubeconfig) as (url, _):  # every namespace
            await eventually(lambda: _served_by(url, "team-b-shop"), message="the older owner")
            for _ in range(5):  # never the newer one, on any request
                assert await _served_by(url, "team-b-shop")

            await kube.delete(path_for(API_VERSION, TRIGGER_PLURAL, "team-b", "older"))
            await eventually(
                lambda: _served_by(url, "team-a-shop"),
                message="the next oldest takes over once the owner is gone",
            )


def test_dev_mode_serves_the_first_claim_and_says_why_not_the_second(platform_factory):
    # "zeta" comes first in the manifests though it sorts last: the order of the manifests
    # stands in for creation times.
    platform = platform_factory(
        [
            dev_function("first", handler="handlers.echo"),
            dev_function("second", handler="handlers.invoked"),
            dev_trigger("zeta", "first", path="/same"),
            dev_trigger("alpha", "second", path="/same/"),
        ]
    )
    with urllib.request.urlopen(f"{platform.url}/same/x", timeout=30) as reply:
        body = json.load(reply)
    assert body["path"] == "/same/x"  # handlers.echo, not handlers.invoked ({"event": ...})
    platform.process.terminate()
    platform.process.wait(timeout=20)
    output = platform.logs()
    refused = [line for line in output.splitlines() if "is not served" in line]
    assert len(refused) == 1, output
    assert "Trigger default/alpha is not served" in refused[0]
    assert "/same" in refused[0]
    assert "belongs to Trigger default/zeta" in refused[0]
