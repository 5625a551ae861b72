"""The gateway probes a starting replica itself and forwards the moment it answers, before
the kubelet's probes and the EndpointSlice say it is ready: through the Kubernetes seam
(kmock, an endpoint that stays not ready, a real runtime process). Dev mode's local platform:
tests/integration/cli/test_local_replicas.py."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from hanshu_cli.local_platform import free_port

from tests.support.helpers import eventually
from tests.support.kube_gateway import (
    CODE,
    NS,
    create,
    function,
    kube_client,
    running_gateway,
    trigger,
)


def starting_slice(port: int, *, terminating: bool = False) -> dict[str, Any]:
    """An EndpointSlice as the endpoints controller writes it while the pod starts: the
    pod's address is known, the kubelet has not seen it ready."""
    conditions = {"ready": False, "serving": False, "terminating": terminating}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "echo-starting",
            "namespace": NS,
            "labels": {"hanshu.io/function": "echo", "kubernetes.io/service-name": "echo"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": conditions}],
    }


async def functions_seen(internal: str) -> dict[str, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{internal}/functions") as reply:
        return {f["name"]: f for f in await reply.json()}


async def known(internal: str, name: str) -> bool:
    return name in await functions_seen(internal)


async def queued(internal: str, name: str) -> bool:
    return (await functions_seen(internal)).get(name, {}).get("queued") == 1


async def test_a_waiting_request_is_forwarded_to_a_replica_the_slice_calls_not_ready(
    kmock, tmp_path, runtime_factory
):
    port = free_port()  # where the pod will listen; nothing does yet (refused)
    async with kube_client(kmock, tmp_path) as (kube, kubeconfig):
        await create(kube, function("echo"))
        await create(kube, trigger("echo", "echo", path="/echo"))
        await create(kube, starting_slice(port))
        async with (
            running_gateway(kubeconfig, HANSHU_WATCH_NAMESPACES=NS) as (url, internal),
            aiohttp.ClientSession() as http,
        ):
            await eventually(lambda: known(internal, "echo"), message="the Function is known")

            async def call() -> tuple[int, dict[str, str], Any]:
                async with http.get(f"{url}/echo/x") as reply:
                    return reply.status, dict(reply.headers), await reply.json()

            waiting = asyncio.create_task(call())
            # Refused probes meanwhile: never an error for the caller.
            await eventually(lambda: queued(internal, "echo"), message="the request waits")
            runtime_factory(CODE, "handlers.echo", ready=False, HANSHU_PORT=str(port))
            status, headers, body = await waiting
            assert status == 200
            assert body["event"]["path"] == "/echo/x"
            assert headers["X-Hanshu-Cold-Start"] == "true"
            # The slice still says not ready; the next request uses the probed replica at once.
            seen = (await functions_seen(internal))["echo"]
            assert seen["readyReplicas"] == 1
            assert seen["queued"] == 0
            status, headers, _ = await call()
            assert status == 200
            assert "X-Hanshu-Cold-Start" not in headers


async def test_a_terminating_replica_is_never_probed_into_use(kmock, tmp_path, runtime_factory):
    runtime = runtime_factory(CODE, "handlers.echo")  # it would answer, but it is going away
    async with kube_client(kmock, tmp_path) as (kube, kubeconfig):
        await create(kube, function("echo"))
        await create(kube, trigger("echo", "echo", path="/echo"))
        await create(kube, starting_slice(runtime.port, terminating=True))
        async with (
            running_gateway(
                kubeconfig, HANSHU_WATCH_NAMESPACES=NS, HANSHU_COLD_START_TIMEOUT="1"
            ) as (url, internal),
            aiohttp.ClientSession() as http,
        ):
            await eventually(lambda: known(internal, "echo"), message="the Function is known")
            async with http.get(f"{url}/echo/x") as reply:
                assert reply.status == 503
                assert (await reply.json())["errorType"] == "FunctionNotReady"


def test_the_ready_path_answers_without_the_function(runtime_factory):
    import urllib.request

    runtime = runtime_factory(CODE, "handlers.boom")  # the function itself always raises
    with urllib.request.urlopen(f"{runtime.url}/_hanshu/ready", timeout=5) as reply:
        assert reply.status == 200
        assert reply.read() == b""
