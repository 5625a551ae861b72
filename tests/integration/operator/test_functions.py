"""The operator reconciling Functions, under kopf, against kmock."""

from __future__ import annotations

from typing import Any

from hanshu_api import ANNOTATION_CHECKSUM, API_VERSION, FUNCTION_PLURAL

from tests.support.helpers import eventually
from tests.support.operator_cluster import Cluster, run_operator
from tests.support.operator_objects import DEPLOYMENTS, FN, HELLO, hello


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


async def test_function_gets_code_configmap_deployment_service_and_status(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    deployment = await eventually(
        lambda: operator.object(DEPLOYMENTS, "hello"), message="the Deployment"
    )
    code = operator.object("v1/configmaps", "hello-code")
    service = operator.object("v1/services", "hello")

    assert code["data"] == HELLO["spec"]["code"]["inline"]
    for child in (code, deployment, service):
        owner = child["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "Function",
            "hello",
            "uid-functions-hello",
        )
        assert owner["controller"] is True
        assert child["metadata"]["labels"]["hanshu.io/function"] == "hello"
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "hanshu-operator"

    assert deployment["spec"]["replicas"] == 0  # scale from zero
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example/hanshu/runtime:test"
    env = env_of(deployment)
    assert env["HANSHU_HANDLER"] == "index.handler"
    assert env["HANSHU_TIMEOUT"] == "20"
    assert env["HANSHU_CONCURRENCY"] == "8"
    assert env["HANSHU_CODE_DIR"] == "/code"
    assert env["GREETING"] == "hi"
    assert {"name": "code", "mountPath": "/code", "readOnly": True} in container["volumeMounts"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert service["spec"]["selector"] == {"hanshu.io/function": "hello"}

    ready = await eventually(
        lambda: (
            (operator.condition(FN, "hello") or {}).get("status") == "True"
            and operator.condition(FN, "hello")
        ),
        message="Ready=True",
    )
    status = operator.object(FN, "hello")["status"]
    assert ready["status"] == "True"
    assert ready["reason"] == "Ready"
    assert status["url"] == "http://hello.ns1.svc.cluster.local"
    assert status["observedGeneration"] == 1
    assert operator.condition(FN, "hello", "DeploymentReady")["reason"] == "ScaledToZero"
    assert operator.condition(FN, "hello", "Active")["status"] == "False"

    def created() -> set[str]:
        return {e["message"] for e in operator.events("Created")}

    await eventually(
        lambda: (
            {"Created Deployment hello", "Created ConfigMap hello-code", "Created Service hello"}
            <= created()
        ),
        message="Created events",
    )


async def test_code_change_rolls_the_deployment_but_keeps_the_replica_count(cluster: Cluster):
    async with run_operator(cluster) as operator:
        await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
        first = await eventually(lambda: operator.object(DEPLOYMENTS, "hello"))
        checksum = first["spec"]["template"]["metadata"]["annotations"][ANNOTATION_CHECKSUM]
        await operator.patch("apps/v1", "deployments", "hello", {"spec": {"replicas": 3}}, "scale")

        new_code = {"index.py": "def handler(event, context):\n    return 'v2'\n"}
        await operator.patch(
            API_VERSION, FUNCTION_PLURAL, "hello", {"spec": {"code": {"inline": new_code}}}
        )

        def rolled() -> bool:
            template = operator.object(DEPLOYMENTS, "hello")["spec"]["template"]
            return template["metadata"]["annotations"][ANNOTATION_CHECKSUM] != checksum

        await eventually(rolled, message="a new checksum on the pod template")
        assert operator.object("v1/configmaps", "hello-code")["data"] == new_code
        assert operator.object(DEPLOYMENTS, "hello")["spec"]["replicas"] == 3


async def test_new_scaling_bounds_clamp_the_replica_count(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    await eventually(lambda: operator.object(DEPLOYMENTS, "hello"))
    await operator.patch(
        API_VERSION,
        FUNCTION_PLURAL,
        "hello",
        {"spec": {"scaling": {"minReplicas": 2, "maxReplicas": 5}}},
    )
    await eventually(
        lambda: operator.object(DEPLOYMENTS, "hello")["spec"]["replicas"] == 2,
        message="replicas raised to minReplicas",
    )
    await eventually(
        lambda: any("MinReplicas: 0 -> 2" in e["message"] for e in operator.events("Scaled")),
        message="Scaled event",
    )


async def test_deployment_status_flows_into_the_function_status(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    await eventually(lambda: operator.object(DEPLOYMENTS, "hello"))
    await operator.patch("apps/v1", "deployments", "hello", {"spec": {"replicas": 2}}, "scale")
    await operator.patch(
        "apps/v1", "deployments", "hello", {"status": {"replicas": 2, "readyReplicas": 1}}, "status"
    )

    def counted() -> bool:
        status = operator.object(FN, "hello").get("status") or {}
        return (status.get("readyReplicas"), status.get("desiredReplicas")) == (1, 2)

    await eventually(counted, message="replica counts in the Function status")
    assert operator.condition(FN, "hello", "Active")["status"] == "True"
    deployment_ready = operator.condition(FN, "hello", "DeploymentReady")
    assert (deployment_ready["reason"], deployment_ready["message"]) == (
        "Available",
        "1 of 2 replica(s) ready",
    )


async def test_runtime_startup_fault_shows_in_the_ready_condition(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello(handler="index.missing"))
    await eventually(lambda: operator.object(DEPLOYMENTS, "hello"))
    fault = (
        "Runtime.HandlerNotFound: module 'index' has no attribute 'missing'. "
        "Fix: define 'missing' in index.py or correct HANSHU_HANDLER"
    )
    await operator.create(
        "v1",
        "pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "hello-abc",
                "labels": {
                    "hanshu.io/function": "hello",
                    "app.kubernetes.io/managed-by": "hanshu-operator",
                },
            },
            "status": {
                "containerStatuses": [
                    {
                        "name": "function",
                        "ready": False,
                        "restartCount": 2,
                        "state": {
                            "waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}
                        },
                        "lastState": {
                            "terminated": {"exitCode": 1, "reason": "Error", "message": fault}
                        },
                    }
                ]
            },
        },
    )

    def failed() -> dict[str, Any] | None:
        ready = operator.condition(FN, "hello")
        return ready if ready and ready["status"] == "False" else None

    ready = await eventually(failed, message="Ready=False with the runtime's fault")
    assert ready["reason"] == "RuntimeStartupFailed"
    assert fault in ready["message"]
    await eventually(
        lambda: any(fault in e["message"] for e in operator.events("RuntimeStartupFailed"))
    )


async def test_invalid_spec_is_a_permanent_error_with_a_condition(operator: Cluster):
    await operator.create(
        API_VERSION,
        FUNCTION_PLURAL,
        hello(handler="main.handler", scaling={"minReplicas": 5, "maxReplicas": 2}),
    )

    def invalid() -> dict[str, Any] | None:
        return operator.condition(FN, "hello", "ConfigurationValid")

    condition = await eventually(invalid, message="ConfigurationValid")
    assert condition["status"] == "False"
    assert condition["reason"] == "InvalidSpec"
    assert "spec.handler 'main.handler' needs main.py in spec.code.inline" in condition["message"]
    assert (
        "minReplicas (5) must not be greater than spec.scaling.maxReplicas (2)"
        in (condition["message"])
    )
    assert operator.condition(FN, "hello")["status"] == "False"
    assert not operator.exists(DEPLOYMENTS, "hello")
    await eventually(lambda: operator.events("InvalidSpec"), message="InvalidSpec event")


async def test_missing_configmap_is_retried_until_it_exists(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello(code={"configMap": {"name": "src"}}))

    def waiting() -> dict[str, Any] | None:
        code = operator.condition(FN, "hello", "CodeReady")
        return code if code and code["status"] == "False" else None

    code = await eventually(waiting, message="CodeReady=False")
    assert code["reason"] == "ConfigMapNotFound"
    assert "the code ConfigMap 'src' (spec.code.configMap) does not exist" in code["message"]
    assert not operator.exists(DEPLOYMENTS, "hello")

    await operator.create(
        "v1",
        "configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "src"},
            "data": {"index.py": "def handler(event, context):\n    return 1\n"},
        },
    )
    deployment = await eventually(
        lambda: operator.object(DEPLOYMENTS, "hello"),
        timeout=20,
        message="the Deployment after the ConfigMap appeared",
    )
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "code", "configMap": {"name": "src"}} in volumes
    await eventually(lambda: operator.condition(FN, "hello", "CodeReady")["status"] == "True")


async def test_missing_secret_in_env_is_named(operator: Cluster):
    await operator.create(
        API_VERSION,
        FUNCTION_PLURAL,
        hello(
            env=[
                {
                    "name": "DB_PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                },
            ]
        ),
    )

    def waiting() -> dict[str, Any] | None:
        code = operator.condition(FN, "hello", "CodeReady")
        return code if code and code["status"] == "False" else None

    code = await eventually(waiting)
    assert code["reason"] == "SecretNotFound"
    assert "the Secret 'db' (env DB_PASSWORD) does not exist in namespace 'ns1'" in code["message"]


async def test_image_code_runs_the_users_image_without_a_code_volume(operator: Cluster):
    await operator.create(
        API_VERSION, FUNCTION_PLURAL, hello(code={"image": "registry.example/team/fn:1"})
    )
    deployment = await eventually(lambda: operator.object(DEPLOYMENTS, "hello"))
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.example/team/fn:1"
    assert all(v["name"] != "code" for v in pod["volumes"])
    assert not operator.exists("v1/configmaps", "hello-code")


async def test_operator_metrics_count_reconciles(operator: Cluster):
    import os

    import aiohttp

    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    await eventually(lambda: operator.condition(FN, "hello"))
    port = os.environ["HANSHU_OPERATOR_METRICS_PORT"]
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as reply,
    ):
        text = await reply.text()
    assert 'hanshu_operator_reconciles_total{kind="Function",outcome="success"}' in text
    assert "hanshu_operator_reconcile_duration_seconds_bucket" in text
    # The replica counts (one tuple per Function, made into samples when scraped) and
    # how late the operator's loop runs what is due (#23).
    assert 'hanshu_function_replicas{function="hello",namespace="ns1",state="desired"}' in text
    assert 'hanshu_event_loop_lag_seconds{statistic="max"}' in text
    assert 'hanshu_event_loop_lag_seconds{statistic="p99"}' in text
