"""A replica that cannot start says why: the operator's real handlers, under kopf, against
pods whose statuses are the ones Kubernetes writes (kmock stands in for the API server; the
test plays the kubelet and the scheduler by writing the pod status).

The shapes, as the kubelet and the scheduler write them (core/v1 PodStatus):
- ``status.containerStatuses[].state.waiting {reason, message}``: ``ErrImagePull`` (the
  registry's error), ``ImagePullBackOff`` (``Back-off pulling image "<image>"``),
  ``CreateContainerConfigError`` (``secret "db" not found``), ``CrashLoopBackOff``;
- ``status.containerStatuses[].lastState.terminated {exitCode, reason, message}``:
  ``OOMKilled`` with 137, ``Error`` with the process's code;
- ``status.conditions[] {type: PodScheduled, status: "False", reason: Unschedulable,
  message: "0/1 nodes are available: 1 Insufficient cpu. ..."}``, phase Pending;
- apps/v1 ``DeploymentStatus.conditions[] {type: Progressing, status: "False", reason:
  ProgressDeadlineExceeded, message: 'ReplicaSet "<rs>" has timed out progressing.'}``.
"""

from __future__ import annotations

import asyncio
import copy
import os
import urllib.request
from typing import Any

from hanshu_api import API_VERSION, FUNCTION_PLURAL
from prometheus_client.parser import text_string_to_metric_families

from tests.support.helpers import eventually
from tests.support.operator_cluster import Cluster

FN = f"{API_VERSION}/{FUNCTION_PLURAL}"
DEPLOYMENTS = "apps/v1/deployments"
IMAGE = "registry.example/team/fn:nope"

FUNCTION = {
    "apiVersion": API_VERSION,
    "kind": "Function",
    "metadata": {"name": "hello"},
    "spec": {
        "handler": "index.handler",
        "code": {"inline": {"index.py": "def handler(event, context):\n    return 'hi'\n"}},
        "scaling": {"minReplicas": 1},
    },
}
NOT_READY = [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}]
READY = [{"type": "Ready", "status": "True"}]


def hello(**spec: Any) -> dict[str, Any]:
    body = copy.deepcopy(FUNCTION)
    body["spec"].update(spec)
    return body


def waiting(reason: str, message: str, /, **terminated: Any) -> dict[str, Any]:
    """One containerStatuses entry of a container that is not running (and why)."""
    status: dict[str, Any] = {
        "name": "function",
        "image": IMAGE,
        "ready": False,
        "restartCount": 1 if terminated else 0,
        "state": {"waiting": {"reason": reason, "message": message}},
    }
    if terminated:
        status["lastState"] = {"terminated": terminated}
    return status


async def start_replica(
    cluster: Cluster, status: dict[str, Any], name: str = "hello-7c9d8-x2k4p"
) -> None:
    """A pod of the Function's Deployment, as the ReplicaSet makes it (the template's labels
    and spec), with the status the kubelet or the scheduler wrote."""
    deployment = await eventually(lambda: cluster.object(DEPLOYMENTS, "hello"))
    template = deployment["spec"]["template"]
    await cluster.create(
        "v1",
        "pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": dict(template["metadata"]["labels"])},
            "spec": copy.deepcopy(template["spec"]),
            "status": status,
        },
    )


async def set_pod_status(cluster: Cluster, status: dict[str, Any], name: str = "hello-7c9d8-x2k4p"):
    await cluster.patch("v1", "pods", name, {"status": status})


async def deployment_ready(cluster: Cluster, reason: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        condition = cluster.condition(FN, "hello", "DeploymentReady")
        return condition if condition and condition["reason"] == reason else None

    return await eventually(reached, message=f"DeploymentReady {reason}")


def _fault_reasons(function: str) -> set[str]:
    """The reasons hanshu_function_replica_fault shows for the Function on the operator's
    /metrics page (what the HanshuReplicasCannotStart alert reads)."""
    port = os.environ["HANSHU_OPERATOR_METRICS_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        page = reply.read().decode()
    return {
        sample.labels["reason"]
        for family in text_string_to_metric_families(page)
        if family.name == "hanshu_function_replica_fault"
        for sample in family.samples
        if sample.labels["function"] == function and sample.value == 1
    }


async def fault_reasons(function: str) -> set[str]:
    return await asyncio.to_thread(_fault_reasons, function)


async def test_an_image_that_cannot_be_pulled_is_named_once_per_change(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello(code={"image": IMAGE}))
    registry = (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{IMAGE}": '
        f'failed to resolve reference "{IMAGE}": not found'
    )
    await start_replica(
        operator,
        {
            "phase": "Pending",
            "conditions": NOT_READY,
            "containerStatuses": [waiting("ErrImagePull", registry)],
        },
    )
    condition = await deployment_ready(operator, "ImagePullFailed")
    assert condition["status"] == "False"
    assert (
        f'the image "{IMAGE}" cannot be pulled (ErrImagePull: {registry})' in condition["message"]
    )
    assert "spec.code.image" in condition["message"]
    # What `kubectl get fn` shows in its Reason column: the Ready condition's reason.
    ready = operator.condition(FN, "hello")
    assert (ready["status"], ready["reason"]) == ("False", "ImagePullFailed")
    await eventually(lambda: operator.events("ImagePullFailed"), message="a Warning")
    assert await fault_reasons("hello") == {"ImagePullFailed"}

    # The kubelet retries: back-off, pull again (the registry says something else this time),
    # back-off, pull again. The message follows the registry; no new Event is posted.
    limited = f'failed to pull and unpack image "{IMAGE}": 429 Too Many Requests'
    for error in (limited, registry):
        await set_pod_status(
            operator,
            {
                "containerStatuses": [
                    waiting("ImagePullBackOff", f'Back-off pulling image "{IMAGE}"')
                ]
            },
        )
        await set_pod_status(operator, {"containerStatuses": [waiting("ErrImagePull", error)]})
        await eventually(
            lambda error=error: (
                error in operator.condition(FN, "hello", "DeploymentReady")["message"]
            ),
            message="the registry's latest error",
        )

    # The fix: a new image. The old pod stays until a new one is ready (maxUnavailable 0),
    # but it predates the change and no longer speaks for the Function.
    await operator.patch(
        API_VERSION,
        FUNCTION_PLURAL,
        "hello",
        {"metadata": {"generation": 2}, "spec": {"code": {"image": "registry.example/team/fn:1"}}},
    )
    starting = await deployment_ready(operator, "Starting")
    assert starting["status"] == "Unknown"
    assert await fault_reasons("hello") == set()  # the alert resolves with the fix
    # The Function's status was written after every Warning its pod could have caused.
    events = operator.events("ImagePullFailed")
    assert len(events) == 1, events
    assert events[0]["type"] == "Warning"
    assert events[0]["involvedObject"]["kind"] == "Function"


async def test_a_replica_no_node_can_run_carries_the_schedulers_message(operator: Cluster):
    await operator.create(
        API_VERSION, FUNCTION_PLURAL, hello(resources={"requests": {"cpu": "64"}})
    )
    scheduler = (
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
        "1 No preemption victims found for incoming pod."
    )
    await start_replica(
        operator,
        {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": scheduler,
                }
            ],
        },
    )
    condition = await deployment_ready(operator, "Unschedulable")
    assert (
        "no node can run a replica: 0/1 nodes are available: 1 Insufficient cpu"
        in (condition["message"])
    )
    assert "spec.resources.requests" in condition["message"]
    warned = await eventually(lambda: operator.events("Unschedulable"), message="a Warning")
    assert "Insufficient cpu" in warned[0]["message"]

    # Scheduled after all (a node was added): the replica starts, becomes ready, and the
    # Function is Available again.
    await set_pod_status(
        operator,
        {
            "phase": "Running",
            "conditions": [{"type": "PodScheduled", "status": "True"}, *READY],
            "containerStatuses": [
                {"name": "function", "ready": True, "started": True, "state": {"running": {}}}
            ],
        },
    )
    await operator.patch(
        "apps/v1", "deployments", "hello", {"status": {"replicas": 1, "readyReplicas": 1}}, "status"
    )
    available = await deployment_ready(operator, "Available")
    assert available["status"] == "True"


async def test_an_initializer_out_of_memory_names_the_limit_and_how_to_raise_it(
    operator: Cluster,
):
    await operator.create(
        API_VERSION,
        FUNCTION_PLURAL,
        hello(initializer="index.warm", resources={"limits": {"memory": "128Mi"}}),
    )
    await start_replica(
        operator,
        {
            "phase": "Running",
            "conditions": NOT_READY,
            "containerStatuses": [
                waiting(
                    "CrashLoopBackOff",
                    "back-off 10s restarting failed container=function pod=hello-7c9d8-x2k4p",
                    exitCode=137,
                    reason="OOMKilled",
                )
            ],
        },
    )
    condition = await deployment_ready(operator, "OutOfMemory")
    message = condition["message"]
    assert "ran out of memory while starting" in message
    assert "(OOMKilled, exit code 137) at its memory limit of 128Mi" in message
    assert "raise spec.resources.limits.memory" in message
    await eventually(lambda: operator.events("OutOfMemory"), message="a Warning")


async def test_a_replica_that_served_and_keeps_crashing_is_a_crash_loop(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    running = {
        "phase": "Running",
        "conditions": READY,
        "containerStatuses": [
            {"name": "function", "ready": True, "started": True, "state": {"running": {}}}
        ],
    }
    await start_replica(operator, running)
    await operator.patch(
        "apps/v1", "deployments", "hello", {"status": {"replicas": 1, "readyReplicas": 1}}, "status"
    )
    await deployment_ready(operator, "Available")

    log_tail = (
        "Fatal Python error: Segmentation fault\nCurrent thread 0x7f (most recent call first):"
    )
    crashed = {
        "phase": "Running",
        "conditions": NOT_READY,
        "containerStatuses": [
            waiting(
                "CrashLoopBackOff",
                "back-off 10s restarting failed container=function pod=hello-7c9d8-x2k4p",
                exitCode=139,
                reason="Error",
                message=log_tail,
            )
        ],
    }
    await set_pod_status(operator, crashed)
    await operator.patch(
        "apps/v1", "deployments", "hello", {"status": {"readyReplicas": 0}}, "status"
    )
    condition = await deployment_ready(operator, "CrashLoop")
    assert condition["status"] == "False"
    assert "keeps restarting: it last exited with code 139 (Error)" in condition["message"]
    assert "kubectl logs --previous -l hanshu.io/function=hello" in condition["message"]
    await eventually(lambda: operator.events("CrashLoop"), message="a Warning")

    # Ready for a while between crashes, then the same crash: a retry, not news.
    await set_pod_status(operator, running)
    await deployment_ready(operator, "Starting")
    crashed["containerStatuses"][0]["state"]["waiting"]["message"] = "back-off 20s ..."
    crashed["containerStatuses"][0]["restartCount"] = 2
    await set_pod_status(operator, crashed)
    await deployment_ready(operator, "CrashLoop")
    # The replica goes: once the status says so, every Warning its events caused is posted.
    await operator.delete("v1", "pods", "hello-7c9d8-x2k4p")
    await deployment_ready(operator, "Starting")
    assert len(operator.events("CrashLoop")) == 1


async def test_a_container_that_cannot_be_created_says_what_is_missing(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    await start_replica(
        operator,
        {
            "phase": "Pending",
            "conditions": NOT_READY,
            "containerStatuses": [waiting("CreateContainerConfigError", 'secret "db" not found')],
        },
    )
    condition = await deployment_ready(operator, "ContainerConfigError")
    assert 'CreateContainerConfigError: secret "db" not found' in condition["message"]
    assert "spec.env" in condition["message"]
    await eventually(lambda: operator.events("ContainerConfigError"), message="a Warning")


async def test_no_replica_ready_by_the_deadline_says_what_is_known(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    deployment = await eventually(lambda: operator.object(DEPLOYMENTS, "hello"))
    assert deployment["spec"]["progressDeadlineSeconds"] == 180
    # Runs, but its readiness probe never passes (an initializer that never returns).
    await start_replica(
        operator,
        {
            "phase": "Running",
            "conditions": NOT_READY,
            "containerStatuses": [
                {"name": "function", "ready": False, "started": True, "state": {"running": {}}}
            ],
        },
    )
    await operator.patch(
        "apps/v1",
        "deployments",
        "hello",
        {
            "status": {
                "replicas": 1,
                "conditions": [
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": 'ReplicaSet "hello-7c9d8" has timed out progressing.',
                    }
                ],
            }
        },
        "status",
    )
    condition = await deployment_ready(operator, "ProgressDeadlineExceeded")
    assert condition["message"].startswith(
        "no replica became ready within 180s: pod hello-7c9d8-x2k4p: Running, not ready "
        "(its readiness probe /readyz fails)"
    )
    assert 'ReplicaSet "hello-7c9d8" has timed out progressing.' in condition["message"]
    await eventually(lambda: operator.events("ProgressDeadlineExceeded"), message="a Warning")
