"""A published version scales like a Function of its own (docs/versions.md): the
autoscaler knows its scaling from its FunctionVersion, so a cold report for its key wakes
its Deployment from zero and idleness takes it back, with no operator running."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
from hanshu_api import API_VERSION, LABEL_FUNCTION, LABEL_MANAGED_BY, MANAGED_BY
from hanshu_api.versions import FUNCTION_VERSION_PLURAL, spec_digest

from devtools.autoscaler_process import LEASE_NAME, AutoscalerProcess
from tests.support.autoscaler_cluster import DEPLOYMENTS, LEASES, Cluster, cold_report, deploy
from tests.support.helpers import eventually

Start = Callable[..., AutoscalerProcess]


async def post(replica: AutoscalerProcess, body: dict[str, Any]) -> int:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{replica.url}/stats", json=body) as reply,
        ):
            return reply.status
    except aiohttp.ClientConnectionError:
        return 0  # still starting


def holder(cluster: Cluster) -> str:
    try:
        return str(cluster.object(LEASES, LEASE_NAME)["spec"]["holderIdentity"])
    except KeyError:
        return ""


async def test_a_version_wakes_from_zero_and_goes_back_on_its_own(
    cluster: Cluster, autoscalers: Start
):
    await deploy(cluster, "hello")  # $LATEST, which stays at zero throughout
    template = {
        "handler": "index.handler",
        "code": {"inline": {"index.py": ""}},
        "scaling": {"scaleToZeroGracePeriod": "1s"},
    }
    version = {
        "apiVersion": API_VERSION,
        "kind": "FunctionVersion",
        "metadata": {"name": "hello-v2"},
        "spec": {
            "function": "hello",
            "version": 2,
            "digest": spec_digest(template),
            "template": template,
        },
    }
    await cluster.create(API_VERSION, FUNCTION_VERSION_PLURAL, version)
    # What the operator makes while an alias references version 2.
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_FUNCTION: "hello-v2"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "hello-v2", "labels": labels},
        "spec": {"replicas": 0},
    }
    await cluster.create("apps/v1", "deployments", deployment)
    only = autoscalers("autoscaler-a")
    await eventually(lambda: holder(cluster) == only.identity, message="the Lease")

    await eventually(lambda: post(only, cold_report("hello-v2")), message="a 2xx")
    await eventually(
        lambda: cluster.object(DEPLOYMENTS, "hello-v2")["spec"]["replicas"] == 1,
        message="version 2: 0 -> 1",
    )
    assert cluster.object(DEPLOYMENTS, "hello")["spec"]["replicas"] == 0
    await eventually(
        lambda: cluster.object(DEPLOYMENTS, "hello-v2")["spec"]["replicas"] == 0,
        timeout=60,
        message="version 2 back to zero",
    )
