"""The hanshu command against kmock (the Kubernetes API emulator), run as a user runs it:
its own arguments, a kubeconfig file, stdout and stderr read back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hanshu_cli.app import app
from typer.testing import CliRunner

from devtools.kube_emulator import ApplyingEmulator, declare_resources, write_kubeconfig

NAMESPACE = "team-a"


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


def run_cli_sync(*args: str) -> Result:
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


async def run_cli(*args: str) -> Result:
    """In a thread: the command's client is synchronous, kmock serves on this loop."""
    return await asyncio.to_thread(run_cli_sync, *args)


class Cluster:
    def __init__(self, emulator: ApplyingEmulator, kubeconfig: Path) -> None:
        self.emulator = emulator
        self.kubeconfig = kubeconfig

    async def hanshu(self, *args: str) -> Result:
        return await run_cli("--kubeconfig", str(self.kubeconfig), *args)

    def object(self, resource: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        return dict(self.emulator.objects[resource, namespace, name].raw)

    def names(self, resource: str, namespace: str = NAMESPACE) -> list[str]:
        return sorted(
            key[2]
            for key, value in self.emulator.objects.items()
            if str(key[0]) == str(self._resource(resource))
            and key[1] == namespace
            and not value.deleted
        )

    @staticmethod
    def _resource(resource: str) -> Any:
        import kmock

        return kmock.resource(resource)

    async def set_status(
        self, plural: str, name: str, status: dict[str, Any], namespace: str = NAMESPACE
    ) -> None:
        """What the operator writes: a merge patch of the status subresource, observing
        the object's current generation."""
        import aiohttp

        path = f"/apis/hanshu.io/v1alpha1/namespaces/{namespace}/{plural}/{name}"
        async with aiohttp.ClientSession(str(self.emulator.url)) as http:
            async with http.get(path) as reply:
                reply.raise_for_status()
                current = await reply.json()
            generation = (current.get("metadata") or {}).get("generation", 1)
            body = {"status": {"observedGeneration": generation, **status}}
            async with http.patch(
                f"{path}/status",
                json=body,
                headers={"Content-Type": "application/merge-patch+json"},
            ) as reply:
                reply.raise_for_status()


def ready(reason: str = "Ready", url: str | None = None, **extra: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": reason, "message": "ok"},
        ],
        **extra,
    }
    if url:
        status["url"] = url
    return status


@pytest.fixture
def kmock_options(kmock_options: dict[str, Any]) -> dict[str, Any]:
    return {**kmock_options, "cls": ApplyingEmulator}


@pytest.fixture
def kubeconfig(kmock: ApplyingEmulator, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", str(kmock.url), NAMESPACE)


@pytest.fixture
def cluster(kmock: ApplyingEmulator, kubeconfig: Path) -> Cluster:
    declare_resources(kmock)
    return Cluster(kmock, kubeconfig)
