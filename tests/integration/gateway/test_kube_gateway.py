"""The gateway's Kubernetes seam: Triggers, Functions, EndpointSlices and published API-key
verifiers from the API (kmock), forwarding to a real runtime process, cold reports to a
real stats sink."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL
from hanshu_api.kube import KubeClient, config_from_kubeconfig, path_for
from prometheus_client.parser import text_string_to_metric_families

from devtools.kube_emulator import declare_resources, write_kubeconfig
from tests.support.helpers import eventually
from tests.support.kube_gateway import (
    CODE,
    NS,
    create,
    endpoint_slice,
    fetch,
    function,
    kube_client,
    published,
    running_gateway,
    status_is,
    trigger,
)
from tests.support.servers import free_port, recording_endpoint


@pytest.fixture
async def stats_sink() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    async with recording_endpoint("/stats") as (url, reports):
        yield url.removesuffix("/stats"), reports


async def test_gateway_follows_the_kubernetes_api(kmock, tmp_path, runtime_factory, stats_sink):
    declare_resources(kmock)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(kmock.url), NS)
    kube = KubeClient(config_from_kubeconfig(str(kubeconfig)))
    runtime = runtime_factory(CODE, "handlers.echo")
    sink_url, reports = stats_sink

    async def create(api_version: str, plural: str, body: dict[str, Any]) -> None:
        body["metadata"].setdefault("namespace", NS)
        await kube.create(path_for(api_version, plural, NS), body)

    await create(
        API_VERSION,
        FUNCTION_PLURAL,
        {
            "apiVersion": API_VERSION,
            "kind": "Function",
            "metadata": {"name": "echo"},
            "spec": {"handler": "handlers.echo", "code": {"image": "x"}, "concurrency": 4},
        },
    )
    await create(
        API_VERSION,
        TRIGGER_PLURAL,
        {
            "apiVersion": API_VERSION,
            "kind": "Trigger",
            "metadata": {"name": "open"},
            "spec": {"functionRef": {"name": "echo"}, "http": {"path": "/open"}},
        },
    )
    await create(
        API_VERSION,
        TRIGGER_PLURAL,
        {
            "apiVersion": API_VERSION,
            "kind": "Trigger",
            "metadata": {"name": "keyed"},
            "spec": {
                "functionRef": {"name": "echo"},
                "http": {"path": "/keyed", "auth": {"apiKeySecretRef": {"name": "keys"}}},
            },
        },
    )
    await create(
        "v1",
        "secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "keys"},
            "data": {"api-key": base64.b64encode(b"s3cret").decode()},
        },
    )
    # What the operator publishes from it, in the gateway's namespace: with no
    # HANSHU_GATEWAY_NAMESPACE, the one its credentials name (the kubeconfig's here).
    await kube.create(path_for("v1", "secrets", NS), published(NS, NS, "keyed", "s3cret"))
    await create("discovery.k8s.io/v1", "endpointslices", endpoint_slice(runtime.port, True))

    port, internal = free_port(), free_port()
    gateway = subprocess.Popen(
        [sys.executable, "-m", "hanshu_gateway"],
        env={
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "HANSHU_WATCH_NAMESPACES": NS,
            "HANSHU_GATEWAY_HOST": "127.0.0.1",
            "HANSHU_GATEWAY_PORT": str(port),
            "HANSHU_GATEWAY_INTERNAL_PORT": str(internal),
            "HANSHU_AUTOSCALER_URL": sink_url,
            "HANSHU_COLD_START_TIMEOUT": "2",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as http:

            async def status_of(path: str, **headers: str) -> int:
                try:
                    async with http.get(f"http://127.0.0.1:{port}{path}", headers=headers) as r:
                        await r.read()
                        return r.status
                except aiohttp.ClientConnectionError:
                    return 0

            await eventually(
                lambda: _equals(status_of("/open/x"), 200),
                timeout=20,
                message="200 through the routes and endpoints from the API",
            )
            assert await status_of("/keyed") == 401
            assert await status_of("/keyed", **{"X-API-Key": "nope"}) == 403
            assert await status_of("/keyed", **{"X-API-Key": "s3cret"}) == 200
            await eventually(lambda: reports, message="the stats the gateway sends every second")
            assert reports[-1]["functions"][0]["name"] == "echo"
            # The outcome figures (the canary's): the two requests a replica served, not
            # the 401 and 403 the gateway refused with.
            await eventually(
                lambda: _served(reports) >= 2, message="the served requests in the reports"
            )
            assert _served(reports) == 2
            assert not any(
                f.get("outcomes", {}).get("errors") for r in reports for f in r["functions"]
            )

            # The replica goes away: the next request is cold, reported at once.
            await kube.merge_patch(
                path_for("discovery.k8s.io/v1", "endpointslices", NS, "echo-abcde"),
                {"endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": False}}]},
            )
            await eventually(lambda: _cold_pool(http, internal), message="no ready endpoint")
            before = len(reports)
            status = await status_of("/open/y")
            assert status == 503  # nothing scaled it up within HANSHU_COLD_START_TIMEOUT
            cold = [r for r in reports[before:] if r["cold"]]
            assert cold, "no report carried the cold request"
            assert cold[0]["cold"][0]["name"] == "echo"
    finally:
        gateway.terminate()
        gateway.wait(timeout=20)
        await kube.close()


def _served(reports: list[dict[str, Any]]) -> int:
    """Requests a replica finished, over every report so far (each counts a window once)."""
    return sum(
        (f.get("outcomes") or {}).get("requests", 0) for r in reports for f in r["functions"]
    )


async def _equals(value: Any, expected: Any) -> bool:
    return (await value) == expected


async def _cold_pool(http: aiohttp.ClientSession, internal: int) -> bool:
    async with http.get(f"http://127.0.0.1:{internal}/functions") as reply:
        functions = await reply.json()
    return any(f["name"] == "echo" and f["readyReplicas"] == 0 for f in functions)


async def test_gb_seconds_meter_the_memory_the_pod_really_has(kmock, tmp_path, runtime_factory):
    """A Function without resources gets the chart's functionDefaults: 512Mi here, so a
    call of s seconds is 0.5 x s GB-seconds (not the 256Mi fallback's 0.25 x s)."""
    runtime = runtime_factory(CODE, "handlers.slow")
    async with kube_client(kmock, tmp_path) as (kube, kubeconfig):
        await create(kube, function("metered", handler="handlers.slow"))
        await create(kube, trigger("metered", "metered", path="/metered"))
        await create(kube, endpoint_slice(runtime.port, True, function="metered"))
        defaults = '{"requests": {"memory": "256Mi"}, "limits": {"memory": "512Mi"}}'
        async with running_gateway(
            kubeconfig, HANSHU_WATCH_NAMESPACES=NS, HANSHU_DEFAULT_RESOURCES=defaults
        ) as (url, internal):
            await eventually(lambda: status_is(f"{url}/metered?seconds=0", 200))
            before = await _gb_seconds(internal, "metered")
            started = time.monotonic()
            assert await status_is(f"{url}/metered?seconds=0.4", 200)
            wall = time.monotonic() - started
            billed = await _gb_seconds(internal, "metered") - before
    assert 0.5 * 0.4 <= billed <= 0.5 * wall


async def _gb_seconds(internal: str, function_name: str) -> float:
    _, page = await fetch(f"{internal}/metrics")
    for family in text_string_to_metric_families(page.decode()):
        for sample in family.samples:
            if (
                sample.name == "hanshu_gateway_gb_seconds_total"
                and sample.labels.get("function") == function_name
            ):
                return float(sample.value)
    return 0.0
