"""The Helm chart, rendered by real helm 3 and helm 4, every object checked against the
Kubernetes schemas and against our security rules."""

from __future__ import annotations

import filecmp
import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.tools import ToolUnavailable, helm

ROOT = Path(__file__).resolve().parent.parent.parent
CHART = ROOT / "charts" / "hanshu"
VALUES = [None, *sorted((CHART / "ci").glob("*.yaml"))]
KUBERNETES_VERSION = "1.32"


@pytest.fixture(scope="module", params=[3, 4], ids=["helm3", "helm4"])
def helm_bin(request: pytest.FixtureRequest) -> Path:
    try:
        return helm(request.param)
    except ToolUnavailable as error:
        pytest.skip(f"helm {request.param} unavailable here: {error}")


def render(helm_bin: Path, values: Path | None, *extra: str) -> list[dict[str, Any]]:
    command = [
        str(helm_bin),
        "template",
        "hanshu",
        str(CHART),
        "--namespace",
        "hanshu-system",
        "--include-crds",
        *extra,
    ]
    if values is not None:
        command += ["-f", str(values)]
    rendered = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(rendered) if d]


def test_chart_crds_are_a_copy_of_the_crds():
    top = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    assert top == sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    mismatch = filecmp.cmpfiles(ROOT / "crds", CHART / "crds", top, shallow=False)[1]
    assert mismatch == [], f"charts/hanshu/crds differs from crds/: {mismatch}; copy crds/ over"


def test_lint_strict(helm_bin: Path):
    for values in VALUES:
        command = [str(helm_bin), "lint", "--strict", str(CHART)]
        if values is not None:
            command += ["-f", str(values)]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", VALUES, ids=lambda v: v.name if v else "defaults")
def test_every_rendered_object_is_valid_kubernetes(helm_bin: Path, values: Path | None):
    for document in render(helm_bin, values):
        if document["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # the Prometheus operator's CRDs are not in the core schemas
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("values", VALUES, ids=lambda v: v.name if v else "defaults")
def test_pods_meet_the_restricted_standard(helm_bin: Path, values: Path | None):
    for document in render(helm_bin, values):
        if document["kind"] != "Deployment":
            continue
        pod = document["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["limits"]["memory"]


def test_rbac_is_least_privilege(helm_bin: Path):
    for values in VALUES:
        for document in render(helm_bin, values):
            if document["kind"] not in ("Role", "ClusterRole"):
                continue
            for rule in document["rules"]:
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[field], f"{document['metadata']['name']}: {rule}"
                if "secrets" in rule["resources"] and not _is_api_keys_role(document):
                    # Read where Functions and Triggers live; written nowhere but the
                    # release namespace (the published API-key verifiers).
                    assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
    operator = next(
        d
        for d in render(helm_bin, None)
        if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-operator")
    )
    granted = {
        (r, v) for rule in operator["rules"] for r in rule["resources"] for v in rule["verbs"]
    }
    # What the operator's code does to children: apply (create + patch), and delete the
    # ones the spec no longer needs (functions.py _remove_child).
    for needed in (
        ("deployments/scale", "patch"),
        ("functions/status", "patch"),
        ("deployments", "patch"),
        ("deployments", "create"),
        ("configmaps", "delete"),
        ("networkpolicies", "delete"),
    ):
        assert needed in granted, needed


def _is_api_keys_role(document: dict[str, Any]) -> bool:
    return document["kind"] == "Role" and document["metadata"]["name"].endswith("-api-keys")


def _secret_verbs(document: dict[str, Any]) -> set[str]:
    return {
        v for rule in document["rules"] if "secrets" in rule["resources"] for v in rule["verbs"]
    }


def _bound_roles(documents: list[dict[str, Any]], account: str) -> list[dict[str, Any]]:
    """The Roles and ClusterRoles a service account is bound to."""
    roles = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in documents
    }
    bound = []
    for binding in documents:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s["name"] == account for s in binding["subjects"]):
            continue
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        bound.append(roles[(ref["kind"], namespace, ref["name"])])
    return bound


@pytest.mark.parametrize("values", VALUES, ids=lambda v: v.name if v else "defaults")
def test_secrets_of_the_release_namespace_only(helm_bin: Path, values: Path | None):
    """The gateway reads the published API-key verifiers in its own namespace and no other
    Secret; the operator writes them there, and elsewhere only reads (and watches) Secrets."""
    documents = render(helm_bin, values)
    gateway = _bound_roles(documents, "hanshu-gateway")
    assert gateway
    for role in gateway:
        if role["kind"] == "ClusterRole" or role["metadata"]["namespace"] != "hanshu-system":
            assert not _secret_verbs(role), f"{role['kind']} {role['metadata']['name']}"
    keys = [r for r in gateway if r["kind"] == "Role" and _secret_verbs(r)]
    assert [(r["metadata"]["namespace"], _secret_verbs(r)) for r in keys] == [
        ("hanshu-system", {"list", "watch"})
    ]
    operator = _bound_roles(documents, "hanshu-operator")
    writes = [r for r in operator if "create" in _secret_verbs(r)]
    assert [(r["kind"], r["metadata"]["namespace"]) for r in writes] == [("Role", "hanshu-system")]
    assert _secret_verbs(writes[0]) == {"get", "list", "watch", "create", "patch", "delete"}
    for role in operator:
        if role is not writes[0]:
            assert _secret_verbs(role) <= {"get", "list", "watch"}, role["metadata"]["name"]
    for document in documents:
        if document["kind"] == "Deployment":
            env = {
                e["name"]: e.get("value")
                for e in document["spec"]["template"]["spec"]["containers"][0]["env"]
            }
            assert env["HANSHU_GATEWAY_NAMESPACE"] == "hanshu-system"


def test_namespaced_mode_creates_nothing_cluster_wide(helm_bin: Path):
    documents = render(helm_bin, CHART / "ci" / "namespaced-values.yaml")
    kinds = {d["kind"] for d in documents}
    assert "ClusterRole" not in kinds
    assert "ClusterRoleBinding" not in kinds
    roles = {
        (d["kind"], d["metadata"]["namespace"])
        for d in documents
        if d["kind"] in ("Role", "RoleBinding")
    }
    # The watched namespaces, and the release namespace for the published API-key Secrets.
    assert roles == {
        (k, ns) for k in ("Role", "RoleBinding") for ns in ("team-a", "team-b", "hanshu-system")
    }
    assert "PodDisruptionBudget" not in kinds  # one gateway replica


def test_defaults(helm_bin: Path):
    documents = render(helm_bin, None)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        by_kind.setdefault(document["kind"], []).append(document)
    assert len(by_kind["CustomResourceDefinition"]) == 2
    operator = next(d for d in by_kind["Deployment"] if d["metadata"]["name"].endswith("operator"))
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    env = {
        e["name"]: e["value"] for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["HANSHU_RUNTIME_IMAGE"] == "hanshu/runtime:0.1.0"
    assert env["HANSHU_NETWORK_POLICY"] == "true"
    assert env["HANSHU_GATEWAY_POD_LABELS"].startswith("{")
    assert by_kind["PodDisruptionBudget"][0]["spec"]["minAvailable"] == 1
    gateway = next(d for d in by_kind["Deployment"] if d["metadata"]["name"].endswith("gateway"))
    gateway_env = {
        e["name"]: e["value"] for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    # The gateway meters the memory the operator gives a Function without resources.
    assert gateway_env["HANSHU_DEFAULT_RESOURCES"] == env["HANSHU_DEFAULT_RESOURCES"]
    assert json.loads(gateway_env["HANSHU_DEFAULT_RESOURCES"])["limits"] == {"memory": "256Mi"}
    assert gateway_env["HANSHU_WATCH_IDLE_SECONDS"] == "120"


def test_monitoring_values_render_the_monitors_and_dashboard(helm_bin: Path):
    documents = render(helm_bin, CHART / "ci" / "monitoring-values.yaml")
    kinds = [d["kind"] for d in documents]
    assert "ServiceMonitor" in kinds
    assert "PodMonitor" in kinds
    dashboard = next(d for d in documents if d["kind"] == "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    panels = json.loads(dashboard["data"]["hanshu.json"])["panels"]
    assert len(panels) == 6
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        "registry.example.com/mirror/"
    )


def test_schema_rejects_typos_and_wrong_types(helm_bin: Path):
    for setting, fragment in (
        ("gateway.replicsa=3", "replicsa"),
        ("gateway.replicas=many", "replicas"),
        ("networkPolicy.enabled=maybe", "enabled"),
    ):
        result = subprocess.run(
            [str(helm_bin), "template", "hanshu", str(CHART), "--set", setting],
            capture_output=True,
            text=True,
        )
        assert result.returncode != 0, setting
        assert fragment in result.stderr


def test_network_policies_guard_the_internal_ports(helm_bin: Path):
    documents = render(helm_bin, CHART / "ci" / "monitoring-values.yaml")
    policies = {d["metadata"]["name"]: d for d in documents if d["kind"] == "NetworkPolicy"}
    gateway = policies["hanshu-gateway"]["spec"]["ingress"]
    assert gateway[0] == {"ports": [{"port": 8080, "protocol": "TCP"}]}  # public
    internal_from = gateway[1]["from"]
    assert internal_from[0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
        "operator"
    )
    assert internal_from[1]["namespaceSelector"]["matchExpressions"][0]["values"] == ["monitoring"]
    operator = policies["hanshu-operator"]["spec"]["ingress"]
    assert operator[0]["ports"] == [{"port": 8090, "protocol": "TCP"}]
    assert (
        operator[0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        == "gateway"
    )
    off = render(helm_bin, None, "--set", "networkPolicy.enabled=false")
    assert not [d for d in off if d["kind"] == "NetworkPolicy"]
