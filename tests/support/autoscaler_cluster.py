"""The autoscaler's tests: ``python -m hanshu_autoscaler`` processes against kmock, with
no operator running; a test creates the Function and the Deployment the operator would
have made (tests/integration/autoscaler/)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hanshu_api import API_VERSION, FUNCTION_PLURAL, LABEL_FUNCTION, LABEL_MANAGED_BY, MANAGED_BY

from devtools.autoscaler_process import AutoscalerProcess
from tests.support.operator_cluster import Cluster

NAMESPACE = "ns1"
FN = f"{API_VERSION}/{FUNCTION_PLURAL}"
DEPLOYMENTS = "apps/v1/deployments"
LEASES = "coordination.k8s.io/v1/leases"


def function_body(name: str, **scaling: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {
            "handler": "index.handler",
            "code": {"inline": {"index.py": "def handler(e, c):\n    return 'hi'\n"}},
            "scaling": scaling,
        },
    }


def deployment_body(name: str, replicas: int = 0) -> dict[str, Any]:
    """The Function's Deployment as the operator makes it, as far as the autoscaler reads."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_FUNCTION: name},
        },
        "spec": {"replicas": replicas},
    }


async def deploy(cluster: Cluster, name: str, **scaling: Any) -> None:
    await cluster.create(API_VERSION, FUNCTION_PLURAL, function_body(name, **scaling))
    await cluster.create("apps/v1", "deployments", deployment_body(name))


def cold_report(name: str, reporter: str = "gw-1") -> dict[str, Any]:
    import time

    return {
        "gateway": reporter,
        "functions": [
            {"namespace": NAMESPACE, "name": name, "inFlight": 0, "queued": 1, "arrivals": 1}
        ],
        "cold": [{"namespace": NAMESPACE, "name": name, "since": time.time()}],
    }


@pytest.fixture
async def autoscalers(
    cluster: Cluster, tmp_path: Path
) -> AsyncIterator[Callable[..., AutoscalerProcess]]:
    """Starts autoscaler replicas by pod name; every one is stopped after the test (from a
    thread: kmock answers their last Lease write in this loop)."""
    started: list[AutoscalerProcess] = []
    kubeconfig = tmp_path / "kubeconfig"

    def start(pod: str, **env: str) -> AutoscalerProcess:
        replica = AutoscalerProcess(pod, kubeconfig, NAMESPACE, env=env).start()
        started.append(replica)
        return replica

    yield start
    for replica in started:
        await asyncio.to_thread(replica.stop)
