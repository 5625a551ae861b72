"""The operator's pure parts: child manifests and status decisions."""

from __future__ import annotations

from typing import Any

import pytest
from hanshu_api.models import parse_function_spec
from hanshu_operator.builders import (
    build_code_config_map,
    build_deployment,
    build_network_policy,
    build_service,
    code_checksum,
    owns_replicas_alone,
    replicas_only,
    with_replicas,
)
from hanshu_operator.config import ConfigError, OperatorConfig, config_from_env
from hanshu_runtime.config import config_from_env as runtime_config_from_env

CONFIG = OperatorConfig(runtime_image="rt:1")


def spec(**overrides: Any):
    raw = {"handler": "index.handler", "code": {"inline": {"index.py": "x"}}}
    raw.update(overrides)
    return parse_function_spec(raw)


def test_pod_meets_the_restricted_pod_security_standard():
    pod = build_deployment("f", "ns", spec(), CONFIG, "sum", 1)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert all("hostPath" not in v for v in pod["volumes"])


def test_service_account_is_opt_in():
    pod = build_deployment("f", "ns", spec(serviceAccountName="reader"), CONFIG, "s", 1)
    pod_spec = pod["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == "reader"
    assert pod_spec["automountServiceAccountToken"] is True


def test_runtime_env_is_what_the_runtime_reads():
    deployment = build_deployment(
        "f",
        "ns",
        spec(initializer="index.init", timeoutSeconds=9, resources={"limits": {"memory": "1Gi"}}),
        CONFIG,
        "s",
        4,
    )
    entries = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    env = {e["name"]: e["value"] for e in entries if "value" in e}
    # The namespace comes from the downward API: the kubelet fills it in.
    fields = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in entries if "valueFrom" in e
    }
    assert fields == {"HANSHU_NAMESPACE": "metadata.namespace"}
    env["HANSHU_NAMESPACE"] = "ns"
    runtime = runtime_config_from_env(env)  # the runtime accepts every value we set
    assert runtime.handler == "index.handler"
    assert runtime.initializer == "index.init"
    assert runtime.timeout_seconds == 9
    assert runtime.memory_mb == 1024
    assert runtime.function_name == "f"
    assert runtime.function_version == "4"
    assert runtime.drain_seconds == 9
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 9


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_memory_falls_back_to_the_platform_defaults_the_pod_gets():
    defaults = {"requests": {"cpu": "50m"}, "limits": {"memory": "512Mi"}}
    config = OperatorConfig(runtime_image="rt:1", default_resources=defaults)
    deployment = build_deployment("f", "ns", spec(), config, "s", 1)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == defaults
    assert env_of(deployment)["HANSHU_MEMORY_MB"] == "512"
    own = spec(resources={"requests": {"memory": "64Mi"}})
    deployment = build_deployment("f", "ns", own, config, "s", 1)
    assert env_of(deployment)["HANSHU_MEMORY_MB"] == "64"  # the Function's own win whole


def test_the_applied_deployment_never_carries_replicas():
    deployment = build_deployment("f", "ns", spec(scaling={"minReplicas": 2}), CONFIG, "s", 1)
    assert "replicas" not in deployment["spec"]
    assert deployment["spec"]["selector"] == {"matchLabels": {"hanshu.io/function": "f"}}
    created = with_replicas(deployment, 2)
    assert created["spec"] == {**deployment["spec"], "replicas": 2}
    assert "replicas" not in deployment["spec"]  # not changed in place
    assert replicas_only(deployment, 2) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "f", "namespace": "ns"},
        "spec": {"replicas": 2},
    }


def managed(*entries: tuple[str, str, bool]) -> dict[str, Any]:
    """A Deployment's managedFields as a real API server writes them."""
    return {
        "metadata": {
            "managedFields": [
                {
                    "manager": manager,
                    "operation": operation,
                    "apiVersion": "apps/v1",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:spec": {"f:replicas": {}} if replicas else {"f:paused": {}},
                    },
                }
                for manager, operation, replicas in entries
            ]
        }
    }


def test_replicas_owned_by_the_operator_alone_are_seen():
    alone = ("op", "Apply", True)
    assert owns_replicas_alone(managed(alone), "op")
    assert not owns_replicas_alone(managed(alone, ("scaler", "Apply", True)), "op")
    scaled = managed(("op", "Apply", False), ("scaler", "Update", True))
    assert not owns_replicas_alone(scaled, "op")
    assert not owns_replicas_alone(managed(("op", "Update", True)), "op")
    assert not owns_replicas_alone({"metadata": {}}, "op")


def test_checksum_follows_the_code():
    one = code_checksum(spec(), None)
    assert one == code_checksum(spec(), None)
    assert one != code_checksum(spec(code={"inline": {"index.py": "y"}}), None)
    by_ref = spec(code={"configMap": {"name": "src"}})
    assert code_checksum(by_ref, {"index.py": "a"}) != code_checksum(by_ref, {"index.py": "b"})


def test_children_for_each_code_source():
    assert build_code_config_map("f", "ns", spec())["data"] == {"index.py": "x"}
    assert build_code_config_map("f", "ns", spec(code={"image": "img"})) is None
    service = build_service("f", "ns")
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_operator_config_from_env():
    config = config_from_env({"HANSHU_WATCH_NAMESPACES": "a, b", "HANSHU_GATEWAY_URL": "http://g/"})
    assert config.namespaces == ("a", "b")
    assert config.gateway_url == "http://g"
    assert config_from_env({}) == OperatorConfig()
    deadline = config_from_env({"HANSHU_PROGRESS_DEADLINE_SECONDS": "90"})
    assert deadline.progress_deadline_seconds == 90
    deployment = build_deployment("f", "ns", spec(), deadline, "s", 1)
    assert deployment["spec"]["progressDeadlineSeconds"] == 90
    assert config_from_env({"HANSHU_NETWORK_POLICY": "True", "HANSHU_LOG_LEVEL": "debug"}) == (
        OperatorConfig(network_policy=True, log_level="DEBUG")
    )


@pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        ("HANSHU_RETRY_DELAY_SECONDS", "soon", "a number >= 0"),
        ("HANSHU_OPERATOR_METRICS_PORT", "70000", "a port number from 0 to 65535"),
        ("HANSHU_DEFAULT_RESOURCES", "{requests", "a JSON object like"),
        ("HANSHU_DEFAULT_RESOURCES", '{"limits": {"memory": "lots"}}', "a JSON object like"),
        ("HANSHU_GATEWAY_POD_LABELS", "[]", "a JSON object of label keys"),
        ("HANSHU_NETWORK_POLICY", "yes", "one of true, false"),
        ("HANSHU_IMAGE_PULL_POLICY", "Sometimes", "one of Always, IfNotPresent, Never"),
        ("HANSHU_LOG_LEVEL", "loud", "one of DEBUG, INFO, WARNING, ERROR"),
        ("HANSHU_PROGRESS_DEADLINE_SECONDS", "0", "a whole number of seconds >= 1"),
        ("HANSHU_PROGRESS_DEADLINE_SECONDS", "2m", "a whole number of seconds >= 1"),
        # Read by the gateway and the dispatcher too, and refused alike.
        ("HANSHU_NATS_URL", "hanshu-nats:4222", "a nats:// or tls:// URL"),
        ("HANSHU_NATS_REPLICAS", "7", "a whole number from 1 to 5"),
    ],
)
def test_a_bad_setting_names_the_variable_and_what_it_takes(
    variable: str, value: str, accepted: str
):
    with pytest.raises(ConfigError) as refused:
        config_from_env({variable: value})
    assert refused.value.variable == variable
    message = str(refused.value)
    assert message.startswith(f"{variable} ")
    assert f"set {variable} to {accepted}" in message
    assert "\n" not in message


def test_network_policy_admits_only_the_gateway():
    assert build_network_policy("f", "ns", CONFIG) is None  # off unless the chart turns it on
    config = OperatorConfig(
        network_policy=True,
        gateway_namespace="hanshu-system",
        gateway_pod_labels={"app.kubernetes.io/component": "gateway"},
        metrics_namespaces=("monitoring",),
    )
    policy = build_network_policy("f", "ns", config)
    assert policy is not None
    assert policy["spec"]["podSelector"] == {"matchLabels": {"hanshu.io/function": "f"}}
    gateway_rule, metrics_rule = policy["spec"]["ingress"]
    assert gateway_rule["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "hanshu-system"
    }
    assert gateway_rule["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/component": "gateway"
    }
    assert gateway_rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert metrics_rule["ports"] == [{"port": 9090, "protocol": "TCP"}]


def test_the_platforms_otlp_endpoint_reaches_function_pods_unless_they_name_their_own():
    def env_of(config: OperatorConfig, **overrides: Any) -> list[tuple[str, str | None]]:
        deployment = build_deployment("f", "ns", spec(**overrides), config, "s", 1)
        entries = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        return [(e["name"], e.get("value")) for e in entries]

    traced = config_from_env({"HANSHU_FUNCTION_OTLP_ENDPOINT": "http://collector:4318"})
    assert ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318") in env_of(traced)
    assert not [n for n, _ in env_of(CONFIG) if n.startswith("OTEL_")]  # off by default
    own = [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://mine:4318"}]
    assert [v for n, v in env_of(traced, env=own) if n == "OTEL_EXPORTER_OTLP_ENDPOINT"] == [
        "http://mine:4318"
    ]
