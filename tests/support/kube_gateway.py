"""The cluster gateway (``hanshu_gateway.kube_gateway.KubeGateway``) in the test's own process and
event loop, against kmock: the objects a test creates (Functions, Triggers, EndpointSlices,
published API-key Secrets) and the gateway started from its environment as its entry point
starts it. No ``hanshu dev`` process: a test of the gateway's Kubernetes seam needs only the
gateway and its replicas."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL
from hanshu_api.api_keys import KeyVerifiers, published_secret
from hanshu_api.kube import KubeClient, config_from_kubeconfig, path_for
from hanshu_api.versions import (
    FUNCTION_VERSION_KIND,
    FUNCTION_VERSION_PLURAL,
    LABEL_VERSION,
    LABEL_VERSION_OF,
    spec_digest,
    version_object_name,
)
from hanshu_gateway.kube_gateway import KubeGateway

from devtools.kube_emulator import declare_resources, write_kubeconfig
from tests.support import ROOT
from tests.support.servers import free_port

CODE = ROOT / "tests" / "integration" / "runtime_code"
NS = "ns1"


def endpoint_slice(
    port: int, ready: bool, function: str = "echo", namespace: str = NS
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{function}-abcde",
            "namespace": namespace,
            "labels": {"hanshu.io/function": function, "kubernetes.io/service-name": function},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}],
    }


def function(name: str, namespace: str = NS, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"handler": "handlers.echo", "code": {"image": "x"}, **spec},
    }


def trigger(
    name: str, function_name: str, namespace: str = NS, created: str | None = None, **http: Any
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if created is not None:
        metadata["creationTimestamp"] = created
    return {
        "apiVersion": API_VERSION,
        "kind": "Trigger",
        "metadata": metadata,
        "spec": {"functionRef": {"name": function_name}, "http": http},
    }


def function_version(
    function_name: str, version: int, template: Mapping[str, Any], namespace: str = NS
) -> dict[str, Any]:
    """A published version as ``hanshu publish`` creates it (issue 28's shape)."""
    return {
        "apiVersion": API_VERSION,
        "kind": FUNCTION_VERSION_KIND,
        "metadata": {
            "name": version_object_name(function_name, version),
            "namespace": namespace,
            "labels": {LABEL_VERSION_OF: function_name, LABEL_VERSION: str(version)},
        },
        "spec": {
            "function": function_name,
            "version": version,
            "digest": spec_digest(template),
            "template": dict(template),
        },
    }


def stored(secret: Mapping[str, Any]) -> dict[str, Any]:
    """A Secret as the API server keeps it (and kmock does not): stringData becomes data."""
    kept = {k: v for k, v in secret.items() if k != "stringData"}
    kept["data"] = {
        k: base64.b64encode(v.encode()).decode() for k, v in secret["stringData"].items()
    }
    return kept


def published(
    gateway_namespace: str, namespace: str, trigger_name: str, *keys: str
) -> dict[str, Any]:
    """What the operator publishes for a keyed Trigger: salted hashes, never the keys."""
    return stored(
        published_secret(gateway_namespace, namespace, trigger_name, KeyVerifiers.of_keys(keys))
    )


async def create(kube: KubeClient, body: dict[str, Any]) -> None:
    api_version, kind = body["apiVersion"], body["kind"]
    plural = {
        "Function": FUNCTION_PLURAL,
        "Trigger": TRIGGER_PLURAL,
        FUNCTION_VERSION_KIND: FUNCTION_VERSION_PLURAL,
    }.get(kind)
    plural = plural or {"Secret": "secrets", "EndpointSlice": "endpointslices"}[kind]
    await kube.create(path_for(api_version, plural, body["metadata"]["namespace"]), body)


@contextlib.asynccontextmanager
async def kube_client(kmock: Any, tmp_path: Path) -> AsyncIterator[tuple[KubeClient, Path]]:
    declare_resources(kmock)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(kmock.url), NS)
    kube = KubeClient(config_from_kubeconfig(str(kubeconfig)))
    try:
        yield kube, kubeconfig
    finally:
        await kube.close()


@contextlib.asynccontextmanager
async def running_gateway(kubeconfig: Path, **env: str) -> AsyncIterator[tuple[str, str]]:
    """The cluster gateway in this process, configured as its entry point is: from the
    environment. Yields its public and internal URLs."""
    port, internal = free_port(), free_port()
    gateway = KubeGateway.from_env(
        {
            "KUBECONFIG": str(kubeconfig),
            "HANSHU_GATEWAY_HOST": "127.0.0.1",
            "HANSHU_GATEWAY_PORT": str(port),
            "HANSHU_GATEWAY_INTERNAL_PORT": str(internal),
            **env,
        }
    )
    await gateway.start()
    try:
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{internal}"
    finally:
        await gateway.stop()


async def fetch(url: str, **headers: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as reply:
        return reply.status, await reply.read()


async def status_is(url: str, expected: int, **headers: str) -> bool:
    return (await fetch(url, **headers))[0] == expected
