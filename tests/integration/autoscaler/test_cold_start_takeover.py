"""The issue's test: the autoscaler leader dies as a cold start begins, and the waiting
request is served, not failed.

Everything of the cold path runs for real but the Kubernetes controllers: the gateway
(its Kubernetes seam, in this process) routes from kmock and holds the request; two
autoscaler processes elect a leader by the Lease; a stand-in for the Deployment and
EndpointSlice controllers publishes a ready endpoint (a real runtime process) once the
Deployment's replicas go above zero. The gateway reports to the standby, as the
autoscaler's Service may route it: with the leader dead the standby answers 503, the
gateway reports again every second, and the standby, once it holds the Lease, scales."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
from hanshu_api import API_VERSION, TRIGGER_PLURAL
from hanshu_api.kube import path_for

from devtools.autoscaler_process import LEASE_NAME, AutoscalerProcess
from tests.support.autoscaler_cluster import DEPLOYMENTS, LEASES, NAMESPACE, Cluster, deploy
from tests.support.helpers import eventually
from tests.support.kube_gateway import endpoint_slice, running_gateway

CODE = Path(__file__).resolve().parent.parent / "runtime_code"
SLICES = "discovery.k8s.io/v1"


@contextlib.asynccontextmanager
async def endpoints_controller(cluster: Cluster, name: str, port: int) -> AsyncIterator[None]:
    """What the Deployment and EndpointSlice controllers do for a cold start: replicas
    above zero -> a ready endpoint (the runtime already listening on ``port``)."""

    async def follow() -> None:
        while True:
            replicas = cluster.object(DEPLOYMENTS, name)["spec"].get("replicas") or 0
            if replicas > 0:
                await cluster.kube.merge_patch(
                    path_for(SLICES, "endpointslices", NAMESPACE, f"{name}-abcde"),
                    {"endpoints": endpoint_slice(port, True, name)["endpoints"]},
                )
                return
            await asyncio.sleep(0.05)

    task = asyncio.create_task(follow())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_leader_killed_during_a_cold_start_the_waiting_request_is_served(
    cluster: Cluster,
    autoscalers: Callable[..., AutoscalerProcess],
    runtime_factory: Any,
    tmp_path: Path,
):
    runtime = runtime_factory(CODE, "handlers.echo")
    await deploy(cluster, "echo")
    await cluster.create(
        API_VERSION,
        TRIGGER_PLURAL,
        {
            "apiVersion": API_VERSION,
            "kind": "Trigger",
            "metadata": {"name": "echo"},
            "spec": {"functionRef": {"name": "echo"}, "http": {"path": "/open"}},
        },
    )
    cold_slice = endpoint_slice(runtime.port, False, "echo")
    cold_slice["endpoints"] = []  # scaled to zero: no pod at all
    await cluster.create(SLICES, "endpointslices", cold_slice)

    replicas = {r.identity: r for r in (autoscalers("a"), autoscalers("b"))}

    def holder() -> str:
        try:
            return str(cluster.object(LEASES, LEASE_NAME)["spec"]["holderIdentity"])
        except KeyError:
            return ""

    leader = replicas[await eventually(holder, message="a leader")]
    (standby,) = (r for r in replicas.values() if r is not leader)

    async with (
        running_gateway(
            tmp_path / "kubeconfig",
            HANSHU_WATCH_NAMESPACES=NAMESPACE,
            HANSHU_AUTOSCALER_URL=standby.url,
            HANSHU_COLD_START_TIMEOUT="30",
        ) as (public, internal),
        aiohttp.ClientSession() as http,
        endpoints_controller(cluster, "echo", runtime.port),
    ):

        async def routed() -> bool:
            async with http.get(f"{internal}/functions") as reply:
                return any(f["name"] == "echo" for f in await reply.json())

        await eventually(routed, message="the gateway routing /open to echo")

        leader.kill()
        killed = time.monotonic()
        async with http.post(f"{public}/open", data=b"hello") as reply:
            status, body = reply.status, await reply.read()
        served_after = time.monotonic() - killed

    assert status == 200, body
    event = json.loads(body)["event"]  # the echo handler's answer: served by the replica
    assert (event["httpMethod"], event["path"]) == ("POST", "/open")
    assert holder() == standby.identity
    assert cluster.object(DEPLOYMENTS, "echo")["spec"]["replicas"] == 1
    # The lease duration and a report interval, well within the cold-start timeout.
    assert served_after < 15, f"served {served_after:.1f}s after the leader's death"
