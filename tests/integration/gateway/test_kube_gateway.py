"""The gateway's Kubernetes seam: Triggers, Functions, EndpointSlices and Secrets from the
API (kmock), forwarding to a real runtime process, cold reports to a real stats sink."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL
from hanshu_api.kube import KubeClient, config_from_kubeconfig, path_for

from tests.conftest import free_port, serving
from tests.helpers import eventually
from tests.kube_emulator import declare_resources, write_kubeconfig

CODE = Path(__file__).resolve().parent.parent / "runtime_code"
NS = "ns1"


def endpoint_slice(port: int, ready: bool) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "echo-abcde",
            "namespace": NS,
            "labels": {"hanshu.io/function": "echo", "kubernetes.io/service-name": "echo"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}],
    }


@pytest.fixture
async def stats_sink() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    reports: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        reports.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/stats", receive)
    async with serving(app) as port:
        yield f"http://127.0.0.1:{port}", reports


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


async def _equals(value: Any, expected: Any) -> bool:
    return (await value) == expected


async def _cold_pool(http: aiohttp.ClientSession, internal: int) -> bool:
    async with http.get(f"http://127.0.0.1:{internal}/functions") as reply:
        functions = await reply.json()
    return any(f["name"] == "echo" and f["readyReplicas"] == 0 for f in functions)
