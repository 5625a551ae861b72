"""The operator's pure parts: child manifests and status decisions."""

from __future__ import annotations

from typing import Any

from hanshu_api.models import parse_function_spec
from hanshu_operator.builders import (
    build_code_config_map,
    build_deployment,
    build_network_policy,
    build_service,
    code_checksum,
    deployment_update,
)
from hanshu_operator.config import OperatorConfig, config_from_env
from hanshu_operator.status import deployment_conditions, pod_fault
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
    env = {
        e["name"]: e["value"]
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    runtime = runtime_config_from_env(env)  # the runtime accepts every value we set
    assert runtime.handler == "index.handler"
    assert runtime.initializer == "index.init"
    assert runtime.timeout_seconds == 9
    assert runtime.memory_mb == 1024
    assert runtime.function_name == "f"
    assert runtime.function_version == "4"
    assert runtime.drain_seconds == 9
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 9


def test_update_never_carries_replicas_or_the_immutable_selector():
    deployment = build_deployment("f", "ns", spec(), CONFIG, "s", 1)
    update = deployment_update(deployment)
    assert "replicas" not in update["spec"]
    assert "selector" not in update["spec"]
    assert update["spec"]["template"] == deployment["spec"]["template"]


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


def test_pod_fault_reads_the_runtimes_termination_message():
    line = "Runtime.ImportModuleError: unable to import module 'x'. Fix: put the file in"
    pod = {
        "status": {
            "containerStatuses": [
                {
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "message": f"{line}\n"}},
                }
            ]
        }
    }
    assert pod_fault(pod) == f"the runtime exited with code 1: {line}"
    pulling = {
        "status": {
            "containerStatuses": [
                {
                    "state": {
                        "waiting": {"reason": "ImagePullBackOff", "message": "pull access denied"}
                    }
                }
            ]
        }
    }
    assert pod_fault(pulling) == "ImagePullBackOff: pull access denied"
    assert pod_fault({"status": {"containerStatuses": [{"state": {"running": {}}}]}}) is None


def test_deployment_conditions():
    ready, active = deployment_conditions(None, None)
    assert (ready.status, ready.reason) == ("Unknown", "DeploymentPending")
    zero = {"spec": {"replicas": 0}, "status": {}}
    ready, active = deployment_conditions(zero, None)
    assert (ready.status, ready.reason, active.status) == ("True", "ScaledToZero", "False")
    starting = {"spec": {"replicas": 1}, "status": {"replicas": 1}}
    assert deployment_conditions(starting, None)[0].reason == "Starting"
    stuck = {
        "spec": {"replicas": 1},
        "status": {
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": "too slow",
                }
            ]
        },
    }
    assert deployment_conditions(stuck, None)[0].reason == "ProgressDeadlineExceeded"
    assert deployment_conditions(starting, "boom")[0].message == "boom"


def test_operator_config_from_env():
    config = config_from_env({"HANSHU_WATCH_NAMESPACES": "a, b", "HANSHU_GATEWAY_URL": "http://g/"})
    assert config.namespaces == ("a", "b")
    assert config.gateway_url == "http://g"


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
