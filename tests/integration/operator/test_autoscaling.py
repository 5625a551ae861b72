"""The Kubernetes side of the autoscaler: a gateway's cold report -> the Deployment's scale
subresource, the reason in the Function's status, and an Event."""

from __future__ import annotations

import os
import time

import aiohttp
import kmock
from hanshu_api import API_VERSION, FUNCTION_PLURAL

from tests.support.helpers import eventually
from tests.support.operator_cluster import Cluster
from tests.support.operator_objects import DEPLOYMENTS, FN, hello


async def report(body: dict) -> int:
    port = os.environ["HANSHU_AUTOSCALER_PORT"]
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{port}/stats", json=body) as reply,
    ):
        return reply.status


async def test_cold_report_scales_the_deployment_and_records_the_reason(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    await eventually(lambda: operator.object(DEPLOYMENTS, "hello")["spec"]["replicas"] == 0)
    await eventually(lambda: operator.condition(FN, "hello"))
    status = await report(
        {
            "gateway": "gw-1",
            "functions": [
                {
                    "namespace": "ns1",
                    "name": "hello",
                    "inFlight": 0,
                    "queued": 1,
                    "arrivals": 1,
                    "idleFor": None,
                }
            ],
            "cold": [{"namespace": "ns1", "name": "hello", "since": time.time()}],
        }
    )
    assert status == 204
    scale_patches = [
        r
        for r in operator.emulator[kmock.resource("apps/v1/deployments")]
        if r.method == "PATCH" and str(r.url.path).endswith("/hello/scale")
    ]
    assert scale_patches, "the autoscaler did not patch deployments/hello/scale"
    assert scale_patches[-1].data == {"spec": {"replicas": 1}}
    assert operator.object(DEPLOYMENTS, "hello")["spec"]["replicas"] == 1

    def last_scale() -> dict | None:
        return (operator.object(FN, "hello").get("status") or {}).get("lastScale")

    scaled = await eventually(last_scale, message="status.lastScale")
    assert scaled["replicas"] == 1
    assert scaled["reason"] == "ColdStart"
    assert "1 request(s) waiting" in scaled["message"]
    await eventually(
        lambda: any("0 -> 1 replicas" in e["message"] for e in operator.events("ColdStart")),
        message="the Event",
    )


async def test_malformed_stats_are_refused_with_a_reason(operator: Cluster):
    async def refused() -> bool:
        try:
            return await report({"functions": []}) == 400
        except aiohttp.ClientConnectionError:
            return False  # the operator is still starting up

    await eventually(refused, message="400 for a report without a gateway id")
