"""The operator under kopf, against kmock (the Kubernetes API emulator) on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import hanshu_operator.handlers  # noqa: F401  (registers the handlers)
import kmock
import pytest
from hanshu_api.kube import KubeClient, config_from_kubeconfig, path_for
from kopf.testing import KopfRunner

from devtools.kube_emulator import ApplyingEmulator, declare_resources, is_apply, write_kubeconfig
from tests.support.servers import free_port

NAMESPACE = "ns1"
# The module kopf runs (``kopf run -m``): importing it registers every handler.
HANDLERS_MODULE = "hanshu_operator.handlers"


class Cluster:
    """What a test does to the emulated cluster, through the real API (like kubectl)."""

    def __init__(self, emulator: ApplyingEmulator, kube: KubeClient) -> None:
        self.emulator = emulator
        self.kube = kube

    def object(self, resource: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        found = self.emulator.objects[resource, namespace, name]
        if found.deleted:
            raise KeyError(name)
        return dict(found.raw)

    def exists(self, resource: str, name: str, namespace: str = NAMESPACE) -> bool:
        try:
            self.object(resource, name, namespace)
        except KeyError:
            return False
        return True

    async def create(self, api_version: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        namespace = body["metadata"].setdefault("namespace", NAMESPACE)
        body["metadata"].setdefault("uid", f"uid-{plural}-{body['metadata']['name']}")
        body["metadata"].setdefault("generation", 1)
        body["metadata"].setdefault("resourceVersion", "1")
        return await self.kube.create(path_for(api_version, plural, namespace), body)

    async def patch(
        self,
        api_version: str,
        plural: str,
        name: str,
        body: dict[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        return await self.kube.merge_patch(
            path_for(api_version, plural, NAMESPACE, name, subresource), body
        )

    async def delete(self, api_version: str, plural: str, name: str) -> None:
        await self.kube.delete(path_for(api_version, plural, NAMESPACE, name))

    def condition(self, resource: str, name: str, kind: str = "Ready") -> dict[str, Any] | None:
        status = self.object(resource, name).get("status") or {}
        return next((c for c in status.get("conditions") or [] if c["type"] == kind), None)

    def events(self, reason: str | None = None) -> list[dict[str, Any]]:
        """Events the operator posted (kmock keeps the requests even for generated names)."""
        posted = [
            request.data
            for request in self.emulator[kmock.resource("v1/events")]
            if request.method == "POST"
        ]
        return [e for e in posted if reason is None or e.get("reason") == reason]

    def applies(self, resource: str, name: str) -> list[kmock.Request]:
        """The server-side applies sent to one object, oldest first."""
        return [
            request
            for request in self.emulator[kmock.resource(resource)]
            if is_apply(request) and request.name == name and request.subresource is None
        ]


@pytest.fixture
def kmock_options(kmock_options: dict[str, Any]) -> dict[str, Any]:
    """kmock's own ``kmock`` fixture, with the emulator that understands server-side apply
    (the operator applies its children)."""
    return {**kmock_options, "cls": ApplyingEmulator}


@pytest.fixture
async def cluster(
    kmock: ApplyingEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Cluster]:
    declare_resources(kmock)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(kmock.url), NAMESPACE)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("HANSHU_RETRY_DELAY_SECONDS", "0.5")
    monkeypatch.setenv("HANSHU_OPERATOR_METRICS_PORT", str(free_port()))
    monkeypatch.setenv("HANSHU_GATEWAY_URL", "http://gateway.example")
    monkeypatch.setenv("HANSHU_RUNTIME_IMAGE", "registry.example/hanshu/runtime:test")
    kube = KubeClient(config_from_kubeconfig(str(kubeconfig)))
    yield Cluster(kmock, kube)
    await kube.close()


@contextlib.asynccontextmanager
async def run_operator(cluster: Cluster) -> AsyncIterator[Cluster]:
    """The operator in its own thread and event loop, as ``kopf run`` would run it.

    kopf cancels every task created in its loop after it started when it stops, so it
    cannot share the test's loop (where kmock serves) and stop cleanly.
    """
    runner = KopfRunner(
        ["run", "--standalone", "--namespace", NAMESPACE, "-m", HANDLERS_MODULE],
        timeout=30,
    )
    await asyncio.to_thread(runner.__enter__)
    try:
        yield cluster
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)
    assert runner.exception is None, runner.output


@pytest.fixture
async def operator(cluster: Cluster) -> AsyncIterator[Cluster]:
    async with run_operator(cluster) as running:
        yield running
