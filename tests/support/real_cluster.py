"""End-to-end tests against the cluster KUBECONFIG points at (kind with `make deploy`
images), run with `make e2e` (`pytest -m e2e`). Each run installs the chart into a fresh
namespace pair and removes it afterwards. Without a reachable cluster, every test skips
and says why; it never fails for that and never pretends to pass."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.tools import ToolUnavailable, helm

ROOT = Path(__file__).resolve().parent.parent.parent
E2E_POOL_SIZE = 2


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found:
        return found
    cached = ROOT / ".cache" / "tools" / "helm4" / "kubectl"
    if cached.exists():
        return str(cached)
    pytest.skip("no kubectl on PATH (install it, or run `make test` once to fetch one)")


@dataclass
class Cluster:
    kubectl: str
    helm: str
    system: str  # where the chart is installed
    apps: str  # where the test Functions live
    # The warm pool's size in ``apps`` when this run installed the chart (0: not known).
    warm_pool_size: int = 0

    def run(
        self, *args: str, namespace: str | None = None, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [self.kubectl, *(["-n", namespace] if namespace else []), *args]
        return subprocess.run(
            command, capture_output=True, text=True, check=check, input=stdin, timeout=300
        )

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        result = self.run(
            "get", kind, name, "-o", "json", namespace=namespace or self.apps, check=False
        )
        return json.loads(result.stdout) if result.returncode == 0 else None

    def apply(self, path: Path | str) -> None:
        self.run("apply", "-f", str(path), namespace=self.apps)

    def condition(
        self, kind: str, name: str, kind_of_condition: str = "Ready"
    ) -> dict[str, Any] | None:
        found = self.get(kind, name) or {}
        return next(
            (
                c
                for c in (found.get("status") or {}).get("conditions") or []
                if c["type"] == kind_of_condition
            ),
            None,
        )


def wait_for(probe: Any, timeout: float, message: str, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{message}: not within {timeout:.0f}s (last: {last!r})")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    kubectl = _kubectl()
    reachable = subprocess.run(
        [kubectl, "version", "--request-timeout=5s", "-o", "json"], capture_output=True, text=True
    )
    if reachable.returncode != 0:
        where = os.environ.get("KUBECONFIG", "~/.kube/config")
        pytest.skip(
            f"no cluster reachable at KUBECONFIG ({where}): "
            f"{reachable.stderr.strip().splitlines()[-1] if reachable.stderr else ''}"
        )
    try:
        helm_bin = str(helm(4) if not shutil.which("helm") else shutil.which("helm"))
    except ToolUnavailable as error:
        pytest.skip(f"no helm: {error}")
    suffix = uuid.uuid4().hex[:6]
    existing = subprocess.run(
        [
            kubectl,
            "get",
            "deploy",
            "-A",
            "-l",
            "app.kubernetes.io/part-of=hanshu,app.kubernetes.io/component=operator",
            "-o",
            "jsonpath={.items[0].metadata.namespace}",
        ],
        capture_output=True,
        text=True,
    )
    installed_in = existing.stdout.strip() if existing.returncode == 0 else ""
    # An installation already serving the cluster (`make deploy`) is used as it is: a second
    # operator would fight it over the same Functions.
    found = Cluster(
        kubectl, helm_bin, installed_in or f"hanshu-e2e-{suffix}", f"hanshu-e2e-apps-{suffix}"
    )
    found.run("apply", "--server-side", "-f", str(ROOT / "crds"))
    found.run("create", "namespace", found.apps)
    release = f"hanshu-{suffix}"
    if not installed_in:
        tag = os.environ.get("TAG", "dev")
        subprocess.run(
            [
                helm_bin,
                "upgrade",
                "--install",
                release,
                str(ROOT / "charts" / "hanshu"),
                "--namespace",
                found.system,
                "--create-namespace",
                "-f",
                str(ROOT / "charts" / "hanshu" / "ci" / "kind-values.yaml"),
                "--set",
                "gateway.service.type=ClusterIP",
                "--set",
                "gateway.service.nodePort=null",
                "--set",
                f"watchNamespaces={{{found.apps}}}",
                # A warm pool in the apps namespace (tests/e2e/test_warm_pool.py).
                "--set",
                "warmPool.enabled=true",
                "--set",
                f"warmPool.namespaces.{found.apps}={E2E_POOL_SIZE}",
                *[
                    arg
                    for image in ("operator", "gateway", "runtime", "dispatcher")
                    for arg in ("--set", f"image.{image}.tag={tag}")
                ],
                "--wait",
                "--timeout",
                "5m",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        found.warm_pool_size = E2E_POOL_SIZE
    try:
        yield found
    finally:
        found.run("delete", "namespace", found.apps, "--wait=false", check=False)
        if not installed_in:
            subprocess.run(
                [helm_bin, "uninstall", release, "--namespace", found.system], capture_output=True
            )
            found.run("delete", "namespace", found.system, "--wait=false", check=False)


@pytest.fixture(scope="session")
def gateway_url(cluster: Cluster) -> Iterator[str]:
    """The gateway through `kubectl port-forward` (works on any cluster, kind or not)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    service = cluster.run(
        "get",
        "svc",
        "-l",
        "app.kubernetes.io/component=gateway",
        "-o",
        "jsonpath={.items[?(@.spec.ports[0].name=='http')].metadata.name}",
        namespace=cluster.system,
    ).stdout.split()[0]
    forward = subprocess.Popen(
        [cluster.kubectl, "-n", cluster.system, "port-forward", f"svc/{service}", f"{port}:80"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: _listening(port), 30, "port-forward to the gateway", 0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        forward.terminate()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
