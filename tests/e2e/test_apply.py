"""Server-side apply of a Function's children on a real API server: what the emulator in
devtools/kube_emulator.py only models (field ownership, defaulting of spec.replicas).

A file removed from spec.code.inline and a removed toleration leave the ConfigMap and the
Deployment; the Deployment stays at zero replicas throughout (never defaulted to 1), and
after creation spec.replicas is held by the autoscaler's field manager, not the operator's.
Skips, like the rest of the e2e suite, when no cluster is reachable.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.real_cluster import Cluster, wait_for

pytestmark = pytest.mark.e2e

NAME = "apply-follows-spec"
TOLERATION = {"key": "hanshu.io/e2e", "operator": "Exists", "effect": "NoSchedule"}


def function(*, helper: bool, toleration: bool) -> dict[str, Any]:
    inline = {"index.py": "def handler(event, context):\n    return 'ok'\n"}
    if helper:
        inline["helper.py"] = "GREETING = 'hi'\n"
    spec: dict[str, Any] = {
        "handler": "index.handler",
        "code": {"inline": inline},
        # Never scheduled (it sits at zero), so the selector needs no such node.
        "nodeSelector": {"hanshu.io/e2e": "apply"},
        "scaling": {"minReplicas": 0, "maxReplicas": 2},
    }
    if toleration:
        spec["tolerations"] = [TOLERATION]
    return {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Function",
        "metadata": {"name": NAME},
        "spec": spec,
    }


def apply(cluster: Cluster, manifest: dict[str, Any]) -> None:
    cluster.run("apply", "-f", "-", namespace=cluster.apps, stdin=json.dumps(manifest))


def pod_spec(cluster: Cluster) -> dict[str, Any]:
    deployment = cluster.get("deploy", NAME) or {}
    return dict(deployment.get("spec", {}).get("template", {}).get("spec", {}))


def replicas_managers(cluster: Cluster) -> set[str]:
    deployment = cluster.run(
        "get", "deploy", NAME, "-o", "json", "--show-managed-fields", namespace=cluster.apps
    )
    entries = json.loads(deployment.stdout)["metadata"].get("managedFields") or []
    return {
        entry["manager"]
        for entry in entries
        if "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
    }


def test_removed_file_and_toleration_leave_the_children(cluster: Cluster):
    apply(cluster, function(helper=True, toleration=True))
    wait_for(
        lambda: "helper.py" in ((cluster.get("cm", f"{NAME}-code") or {}).get("data") or {}),
        120,
        "the code ConfigMap with both files",
    )
    wait_for(lambda: pod_spec(cluster).get("tolerations"), 120, "the toleration")
    assert (cluster.get("deploy", NAME) or {})["spec"]["replicas"] == 0

    apply(cluster, function(helper=False, toleration=False))
    wait_for(
        lambda: set((cluster.get("cm", f"{NAME}-code") or {}).get("data") or {}) == {"index.py"},
        120,
        "helper.py gone from the ConfigMap",
    )
    wait_for(lambda: "tolerations" not in pod_spec(cluster), 120, "the toleration gone")
    assert pod_spec(cluster)["nodeSelector"] == {"hanshu.io/e2e": "apply"}
    assert (cluster.get("deploy", NAME) or {})["spec"]["replicas"] == 0
    managers = replicas_managers(cluster)
    assert "hanshu-operator" not in managers
    assert managers, "spec.replicas has no manager"
    cluster.run("delete", "fn", NAME, namespace=cluster.apps, check=False)
