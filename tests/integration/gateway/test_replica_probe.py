"""The gateway probes a starting replica itself and forwards the moment it answers, before
the kubelet's probes and the EndpointSlice say it is ready: through the Kubernetes seam
(kmock, an endpoint that stays not ready, a real runtime process) and the local platform."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
from hanshu_api.models import parse_function_spec, parse_trigger_spec
from hanshu_cli.local_platform import LocalPlatform, free_port
from hanshu_gateway.catalog import Catalog, KnownTrigger
from hanshu_gateway.probe import starting_listener
from hanshu_gateway.server import Gateway, GatewayConfig

from tests.helpers import eventually
from tests.integration.gateway.test_kube_gateway import (
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


HELLO = textwrap.dedent("""
    def handler(event, context):
        return "hello"
""")


async def test_the_local_platform_reports_starting_replicas_to_probe(tmp_path: Path):
    """The local platform reports a replica as starting, then as ready: the gateway takes
    either word without a 5xx, and a probed replica stays usable once it is ready."""
    key = ("default", "hello")
    spec = parse_function_spec(
        {"handler": "index.handler", "code": {"inline": {"index.py": HELLO}}}
    )
    platform = LocalPlatform(workdir=tmp_path)
    platform.add_function(key, spec)
    catalog = Catalog(10, lambda namespace, trigger: None)
    catalog.set_function(key, spec)
    catalog.set_triggers(
        [
            KnownTrigger(
                "default",
                "hello",
                None,
                parse_trigger_spec(
                    {"functionRef": {"name": "hello"}, "http": {"path": "/hello"}}, "default"
                ),
            )
        ]
    )
    # As dev mode wires it, plus the starting replicas: whichever comes first (the
    # platform's /readyz poll or the gateway's probe) hands the waiting request its replica.
    platform.listen(catalog.set_endpoints)
    platform.listen_starting(starting_listener(catalog))
    port = free_port()
    gateway = Gateway(
        GatewayConfig(
            host="127.0.0.1", port=port, internal_port=free_port(), cold_start_timeout=10
        ),
        catalog,
    )
    await gateway.start()
    pool = catalog.functions[key].pool
    try:
        async with aiohttp.ClientSession() as http:
            waiting = asyncio.ensure_future(http.get(f"http://127.0.0.1:{port}/hello"))
            await eventually(lambda: pool.queued == 1, message="the request waits")
            await platform.set_replicas(key, 1)
            async with await waiting as reply:
                assert reply.status == 200
                assert await reply.text() == "hello"
                assert reply.headers["X-Hanshu-Cold-Start"] == "true"
            await eventually(lambda: not pool.starting, message="the platform calls it ready")
            assert len(pool.ready) == 1
    finally:
        await gateway.close()
        await platform.close()
