"""The warm pool on a real cluster: the apps namespace is pooled (tests/support/
real_cluster.py installs the chart with ``warmPool.namespaces.<apps>=2``); an eligible
Function's status says so; its first call from zero is answered by a claimed pool pod;
the pool's ReplicaSet refills."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from tests.support.real_cluster import Cluster, wait_for

pytestmark = pytest.mark.e2e

NAME = "pooled-hello"
FUNCTION = {
    "apiVersion": "hanshu.io/v1alpha1",
    "kind": "Function",
    "metadata": {"name": NAME},
    "spec": {
        "handler": "index.handler",
        "code": {
            "inline": {
                "index.py": (
                    "def handler(event, context):\n"
                    "    return {'statusCode': 200, 'body': 'pooled hello\\n'}\n"
                )
            }
        },
    },
}
TRIGGER = {
    "apiVersion": "hanshu.io/v1alpha1",
    "kind": "Trigger",
    "metadata": {"name": NAME},
    "spec": {"functionRef": {"name": NAME}, "http": {"path": f"/{NAME}", "stripPrefix": True}},
}
POOL_SELECTOR = "hanshu.io/pool=hanshu-pool"


def pool_pods(cluster: Cluster) -> list[dict[str, Any]]:
    listed = cluster.run("get", "pods", "-l", POOL_SELECTOR, "-o", "json", namespace=cluster.apps)
    return list(json.loads(listed.stdout).get("items") or [])


def available_ready(cluster: Cluster) -> set[str]:
    return {
        pod["metadata"]["name"]
        for pod in pool_pods(cluster)
        if pod["metadata"]["labels"].get("hanshu.io/pool-state") == "available"
        and not pod["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (pod.get("status") or {}).get("conditions") or []
        )
    }


def test_a_cold_call_is_answered_by_a_pool_pod_and_the_pool_refills(
    cluster: Cluster, gateway_url: str
) -> None:
    if not cluster.warm_pool_size:
        pytest.skip(
            "the platform was installed before this run: its warm pool settings are unknown "
            f"(install with warmPool.namespaces.{cluster.apps}=2 to run this test)"
        )
    size = cluster.warm_pool_size
    before = wait_for(
        lambda: (found := available_ready(cluster)) and len(found) == size and found,
        300,
        f"{size} ready pool pods",
    )
    for manifest in (FUNCTION, TRIGGER):
        cluster.run("apply", "-f", "-", namespace=cluster.apps, stdin=json.dumps(manifest))
    eligible = wait_for(
        lambda: cluster.condition("fn", NAME, "PoolEligible"), 120, "PoolEligible written"
    )
    assert eligible["status"] == "True", eligible
    wait_for(
        lambda: (cluster.get("deploy", NAME) or {}).get("spec", {}).get("replicas") == 0,
        180,
        f"{NAME} at zero replicas",
    )

    with urllib.request.urlopen(f"{gateway_url}/{NAME}", timeout=60) as reply:
        assert reply.status == 200
        assert reply.read() == b"pooled hello\n"

    # A pool pod was claimed for it (it may already be retired: the Function's own
    # replica took over), and the ReplicaSet made a replacement: the pool is full again.
    refilled = wait_for(
        lambda: (
            (found := available_ready(cluster)) and len(found) == size and found != before and found
        ),
        300,
        "the pool refilled with a new pod",
    )
    assert before - refilled, "no pool pod was claimed: the cold call took the pod-start path"
