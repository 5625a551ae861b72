"""Children follow the Function's spec, removals included: the operator applies them with
server-side apply under its own field manager, and never keeps spec.replicas for itself.

kmock learns apply from devtools/kube_emulator.py (a model; tests/integration/operator/
test_apply_emulator.py tests it); real field ownership is checked on a real cluster by
tests/e2e/test_apply.py.
"""

from __future__ import annotations

from typing import Any

import kmock
from hanshu_api import API_VERSION, FUNCTION_PLURAL
from hanshu_api.kube import path_for

from tests.support.helpers import eventually
from tests.support.operator_cluster import Cluster, run_operator
from tests.support.operator_objects import DEPLOYMENTS, FN, hello

CONFIGMAPS = "v1/configmaps"
OPERATOR_MANAGER = "hanshu-operator"
REPLICAS_MANAGER = "hanshu-autoscaler"
HELPER = {"helper.py": "GREETING = 'hi'\n"}
TOLERATION = {"key": "dedicated", "operator": "Equal", "value": "fn", "effect": "NoSchedule"}


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    return dict(deployment["spec"]["template"]["spec"])


def assert_operator_apply(request: kmock.Request) -> None:
    assert request.params.get("fieldManager") == OPERATOR_MANAGER
    assert request.params.get("force") == "true"
    for field in ("apiVersion", "kind"):
        assert request.data[field]
    assert request.data["metadata"]["name"] == request.name
    assert request.data["metadata"]["namespace"] == "ns1"
    assert request.data["metadata"]["ownerReferences"][0]["name"] == "hello"
    assert "status" not in request.data


async def test_removed_inline_file_and_toleration_leave_the_children(operator: Cluster):
    function = hello(nodeSelector={"disk": "ssd"}, tolerations=[TOLERATION])
    function["spec"]["code"]["inline"].update(HELPER)
    await operator.create(API_VERSION, FUNCTION_PLURAL, function)
    await eventually(lambda: operator.condition(FN, "hello"), message="the first status")
    assert set(operator.object(CONFIGMAPS, "hello-code")["data"]) == {"index.py", "helper.py"}
    assert pod_spec(operator.object(DEPLOYMENTS, "hello"))["tolerations"] == [TOLERATION]

    await operator.patch(
        API_VERSION,
        FUNCTION_PLURAL,
        "hello",
        {"spec": {"code": {"inline": {"helper.py": None}}, "tolerations": None}},
    )

    def last_apply(resource: str, name: str) -> kmock.Request | None:
        applies = operator.applies(resource, name)
        return applies[-1] if applies else None

    def applied_without_helper() -> kmock.Request | None:
        request = last_apply(CONFIGMAPS, "hello-code")
        return request if request is not None and "helper.py" not in request.data["data"] else None

    def applied_without_toleration() -> kmock.Request | None:
        request = last_apply(DEPLOYMENTS, "hello")
        pod = request.data["spec"]["template"]["spec"] if request is not None else {}
        return request if request is not None and "tolerations" not in pod else None

    code_apply = await eventually(applied_without_helper, message="the code applied again")
    deployment_apply = await eventually(
        applied_without_toleration, message="the Deployment applied again"
    )
    for request in (code_apply, deployment_apply):
        assert_operator_apply(request)
    assert set(code_apply.data["data"]) == {"index.py"}
    assert deployment_apply.data["spec"]["template"]["spec"]["nodeSelector"] == {"disk": "ssd"}
    # And the objects follow: the file and the toleration are gone, the rest stays.
    assert set(operator.object(CONFIGMAPS, "hello-code")["data"]) == {"index.py"}
    live_pod = pod_spec(operator.object(DEPLOYMENTS, "hello"))
    assert "tolerations" not in live_pod
    assert live_pod["nodeSelector"] == {"disk": "ssd"}


async def test_creation_hands_replicas_to_the_autoscaler_and_never_applies_them_again(
    operator: Cluster,
):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    await eventually(lambda: operator.condition(FN, "hello"), message="the first status")
    await operator.patch(API_VERSION, FUNCTION_PLURAL, "hello", {"spec": {"concurrency": 4}})
    await eventually(
        lambda: len(operator.applies(DEPLOYMENTS, "hello")) >= 3,
        message="the Deployment applied after the update",
    )

    create, handover, *later = operator.applies(DEPLOYMENTS, "hello")
    assert_operator_apply(create)
    assert create.data["spec"]["replicas"] == 0  # else the API server defaults it to 1
    assert handover.params.get("fieldManager") == REPLICAS_MANAGER
    assert "force" not in handover.params  # a conflict means it is held already
    assert handover.data == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "hello", "namespace": "ns1"},
        "spec": {"replicas": 0},
    }
    assert later
    for request in later:
        assert_operator_apply(request)
        assert "replicas" not in request.data["spec"]
    # Still cold: dropping a field that only the operator owned would have defaulted it to 1.
    assert operator.object(DEPLOYMENTS, "hello")["spec"]["replicas"] == 0
    owners = operator.emulator.owners(DEPLOYMENTS, "ns1", "hello")
    assert owners[(REPLICAS_MANAGER, "Apply")]["spec"] == {"replicas": 0}
    assert "replicas" not in owners[(OPERATOR_MANAGER, "Apply")]["spec"]
    assert all(
        "replicas" not in request.data.get("spec", {})
        for resource, name in ((CONFIGMAPS, "hello-code"), ("v1/services", "hello"))
        for request in operator.applies(resource, name)
    )


async def test_a_create_interrupted_before_the_handover_is_completed(cluster: Cluster):
    """The operator stopped between its two creation applies: the next reconcile hands
    replicas over before it stops applying them."""
    await cluster.kube.apply(
        path_for("apps/v1", "deployments", "ns1", "hello"),
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "hello", "namespace": "ns1"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"hanshu.io/function": "hello"}}},
        },
        OPERATOR_MANAGER,
    )
    async with run_operator(cluster) as operator:
        await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
        await eventually(
            lambda: len(operator.applies(DEPLOYMENTS, "hello")) >= 3,
            message="the operator's applies",
        )
        _, handover, apply = operator.applies(DEPLOYMENTS, "hello")[:3]
        assert handover.params.get("fieldManager") == REPLICAS_MANAGER
        assert handover.data["spec"] == {"replicas": 2}
        assert "replicas" not in apply.data["spec"]
        assert operator.object(DEPLOYMENTS, "hello")["spec"]["replicas"] == 2


async def test_a_child_the_spec_no_longer_needs_is_deleted(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    await eventually(lambda: operator.exists(CONFIGMAPS, "hello-code"), message="the code")
    # The code moves into an image: the inline code's ConfigMap has nothing left to do.
    await operator.patch(
        API_VERSION, FUNCTION_PLURAL, "hello", {"spec": {"code": {"inline": None, "image": "x"}}}
    )
    await eventually(
        lambda: not operator.exists(CONFIGMAPS, "hello-code"), message="the ConfigMap deleted"
    )
    await eventually(lambda: operator.events("Deleted"), message="a Deleted event")
