"""Why replicas cannot start, from pod statuses in the shapes Kubernetes writes them.

The shapes (core/v1 PodStatus, apps/v1 DeploymentStatus), as `kubectl get -o yaml` shows:
- image pulls: ``containerStatuses[].state.waiting`` ``{reason: ErrImagePull, message:
  'rpc error: code = NotFound desc = failed to pull and unpack image ...'}``, then
  ``{reason: ImagePullBackOff, message: 'Back-off pulling image "<image>"'}`` (the
  kubelet's image manager: ``fmt.Sprintf("Back-off pulling image %q", image)``);
- scheduling: ``conditions[] {type: PodScheduled, status: "False", reason: Unschedulable,
  message: '0/1 nodes are available: 1 Insufficient cpu. preemption: ...'}``, phase Pending;
- crashes: ``state.waiting {reason: CrashLoopBackOff, message: 'back-off 40s restarting
  failed container=...'}`` with ``lastState.terminated {exitCode, reason, message}``;
  the out-of-memory killer: ``lastState.terminated {exitCode: 137, reason: OOMKilled}``;
- configuration: ``state.waiting {reason: CreateContainerConfigError, message: 'secret
  "db" not found'}``;
- the deadline: ``DeploymentStatus.conditions[] {type: Progressing, status: "False",
  reason: ProgressDeadlineExceeded, message: 'ReplicaSet "<rs>" has timed out
  progressing.'}``.
"""

from __future__ import annotations

from typing import Any

from hanshu_api.conditions import REPLICA_FAULT_REASONS, ReplicaFault, replica_fault
from hanshu_operator.function_status import deployment_conditions
from hanshu_operator.replica_faults import (
    PodReport,
    StartFailure,
    pod_summary,
    replica_failure,
    report_pod,
    start_failure,
)

IMAGE = "registry.example/team/fn:nope"


def pod(
    *statuses: dict[str, Any],
    name: str = "hello-abc",
    version: str = "1",
    memory: str | None = "256Mi",
    conditions: list[dict[str, Any]] | None = None,
    phase: str = "Running",
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "function",
        "image": IMAGE,
        "env": [{"name": "HANSHU_FUNCTION_VERSION", "value": version}],
        "resources": {"limits": {"memory": memory}} if memory else {},
    }
    return {
        "metadata": {"name": name, "labels": {"hanshu.io/function": "hello"}},
        "spec": {"containers": [container]},
        "status": {
            "phase": phase,
            "conditions": conditions or [{"type": "Ready", "status": "False"}],
            "containerStatuses": [
                {"name": "function", "image": IMAGE, "ready": False, **s} for s in statuses
            ],
        },
    }


def waiting(reason: str, message: str, /, **last: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"state": {"waiting": {"reason": reason, "message": message}}}
    if last:
        status["lastState"] = {"terminated": last}
    return status


def deployment(replicas: int = 1, version: str = "1", **status: Any) -> dict[str, Any]:
    template = {
        "spec": {
            "containers": [
                {"name": "function", "env": [{"name": "HANSHU_FUNCTION_VERSION", "value": version}]}
            ]
        }
    }
    return {
        "metadata": {"name": "hello"},
        "spec": {"replicas": replicas, "progressDeadlineSeconds": 180, "template": template},
        "status": status,
    }


def test_image_pull_failures_keep_the_registrys_error_through_the_back_off():
    pulled = report_pod(
        pod(
            waiting(
                "ErrImagePull",
                f'rpc error: code = NotFound desc = failed to pull and unpack image "{IMAGE}"',
            )
        ),
        None,
    )
    assert pulled.failure is not None
    assert pulled.failure.reason == "ImagePullFailed"
    assert f'the image "{IMAGE}" cannot be pulled (ErrImagePull: rpc error' in (
        pulled.failure.message
    )
    assert "spec.code.image" in pulled.failure.message
    backing_off = report_pod(
        pod(waiting("ImagePullBackOff", f'Back-off pulling image "{IMAGE}"')), pulled
    )
    assert backing_off.failure == pulled.failure  # a retry, not a new failure
    for reason in ("InvalidImageName", "ErrImageNeverPull"):
        failure = start_failure(pod(waiting(reason, "no")), served=False)
        assert failure is not None
        assert failure.reason == "ImagePullFailed"


def test_unschedulable_carries_the_schedulers_message():
    scheduler = (
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
        "1 No preemption victims found for incoming pod."
    )
    pending = pod(
        phase="Pending",
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": scheduler,
            }
        ],
    )
    pending["status"].pop("containerStatuses")
    failure = start_failure(pending, served=False)
    assert failure is not None
    assert failure.reason == "Unschedulable"
    assert "0/1 nodes are available: 1 Insufficient cpu" in failure.message
    assert "spec.resources.requests" in failure.message
    assert pod_summary(pending) == "pod hello-abc: Pending, not scheduled (Unschedulable)"


def test_out_of_memory_names_the_limit_and_the_field_that_raises_it():
    killed = pod(
        waiting(
            "CrashLoopBackOff",
            "back-off 10s restarting failed container=function pod=hello-abc_ns1(uid)",
            exitCode=137,
            reason="OOMKilled",
        )
    )
    failure = start_failure(killed, served=False)
    assert failure is not None
    assert failure.reason == "OutOfMemory"
    assert "at its memory limit of 256Mi" in failure.message
    assert "while starting" in failure.message
    assert "raise spec.resources.limits.memory" in failure.message
    unlimited = start_failure(
        pod(waiting("CrashLoopBackOff", "", exitCode=137, reason="OOMKilled"), memory=None),
        served=True,
    )
    assert unlimited is not None
    assert "no memory limit" in unlimited.message


def test_runtime_start_up_fault_versus_a_crash_loop_after_serving():
    line = "Runtime.ImportModuleError: unable to import module 'x'. Fix: put the file in"
    started = pod(waiting("CrashLoopBackOff", "back-off 20s", exitCode=1, message=f"{line}\n"))
    failure = start_failure(started, served=False)
    assert failure == StartFailure(
        "RuntimeStartupFailed",
        f"the runtime exited with code 1: {line}",
        signature=f"1: {line}",
    )
    tail = "Traceback (most recent call last):\n  ...\nSystemExit: 3\n"
    crashed = pod(
        waiting("CrashLoopBackOff", "back-off 40s", exitCode=3, reason="Error", message=tail)
    )
    crash = start_failure(crashed, served=True)
    assert crash is not None
    assert crash.reason == "CrashLoop"
    assert "it last exited with code 3 (Error): SystemExit: 3" in crash.message
    assert "kubectl logs --previous -l hanshu.io/function=hello" in crash.message
    # The back-off delay grows with every retry; the signature (one Event) does not.
    later = pod(
        waiting("CrashLoopBackOff", "back-off 5m0s", exitCode=3, reason="Error", message=tail)
    )
    assert start_failure(later, served=True) == crash


def test_a_ready_pod_and_a_starting_pod_have_no_failure():
    ready = pod({"state": {"running": {}}, "ready": True, "started": True})
    ready["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    assert start_failure(ready, served=True) is None
    creating = pod(waiting("ContainerCreating", ""), phase="Pending")
    assert start_failure(creating, served=False) is None
    assert pod_summary(creating) == "pod hello-abc: Pending, waiting: ContainerCreating"
    unready = pod({"state": {"running": {}}, "started": True})
    assert start_failure(unready, served=False) is None
    assert "not ready (its readiness probe /readyz fails)" in pod_summary(unready)


def test_container_config_error_says_what_is_missing():
    failure = start_failure(
        pod(waiting("CreateContainerConfigError", 'secret "db" not found')), served=False
    )
    assert failure is not None
    assert failure.reason == "ContainerConfigError"
    assert 'CreateContainerConfigError: secret "db" not found' in failure.message
    assert "spec.env" in failure.message


def test_a_pod_from_before_the_last_change_does_not_speak_for_it():
    old = report_pod(pod(waiting("ImagePullBackOff", "x"), version="1"), None)
    assert replica_failure(deployment(version="1"), [old]) is not None
    assert replica_failure(deployment(version="2"), [old]) is None


def test_the_first_failing_pod_by_name_is_the_functions():
    unschedulable = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/1 nodes are available",
    }
    b = report_pod(pod(name="hello-b", conditions=[unschedulable]), None)
    a = report_pod(pod(waiting("ErrImagePull", "x"), name="hello-a"), None)
    failure = replica_failure(deployment(), [b, a])
    assert failure is not None
    assert failure.reason == "ImagePullFailed"


def test_progress_deadline_says_what_the_pods_are_doing():
    stuck = deployment(
        replicas=1,
        conditions=[
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "hello-5d4f8" has timed out progressing.',
            }
        ],
    )
    unready = report_pod(pod({"state": {"running": {}}, "started": True}), None)
    failure = replica_failure(stuck, [unready])
    assert failure is not None
    assert failure.reason == "ProgressDeadlineExceeded"
    assert failure.message.startswith(
        "no replica became ready within 180s: pod hello-abc: Running, not ready"
    )
    assert 'ReplicaSet "hello-5d4f8" has timed out progressing.' in failure.message
    idle = deployment(replicas=0, conditions=stuck["status"]["conditions"])
    assert replica_failure(idle, []) is None  # nothing is meant to run
    assert replica_failure(deployment(replicas=0), []) is None


def test_deployment_conditions():
    ready, active = deployment_conditions(None, None)
    assert (ready.status, ready.reason) == ("Unknown", "DeploymentPending")
    zero = {"spec": {"replicas": 0}, "status": {}}
    ready, active = deployment_conditions(zero, None)
    assert (ready.status, ready.reason, active.status) == ("True", "ScaledToZero", "False")
    starting = {"spec": {"replicas": 1}, "status": {"replicas": 1}}
    assert deployment_conditions(starting, None)[0].reason == "Starting"
    failed = deployment_conditions(starting, StartFailure("OutOfMemory", "boom"))[0]
    assert (failed.status, failed.reason, failed.message) == ("False", "OutOfMemory", "boom")


def test_the_gateway_reads_a_replica_fault_from_the_function_status():
    def function(reason: str, status: str = "False", observed: int = 3) -> dict[str, Any]:
        condition = {"type": "DeploymentReady", "status": status, "reason": reason, "message": "m"}
        return {
            "metadata": {"generation": 3},
            "status": {"observedGeneration": observed, "conditions": [condition]},
        }

    assert replica_fault(function("ImagePullFailed")) == ReplicaFault("ImagePullFailed", "m")
    assert replica_fault(function("Starting", "Unknown")) is None
    assert replica_fault(function("SomethingElse")) is None
    # The user changed the spec since: the change may be the fix.
    assert replica_fault(function("ImagePullFailed", observed=2)) is None
    assert {"ImagePullFailed", "Unschedulable", "CrashLoop", "OutOfMemory"} < (
        REPLICA_FAULT_REASONS
    )


def test_report_keeps_that_a_pod_served():
    ready = pod({"state": {"running": {}}, "ready": True})
    ready["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    served = report_pod(ready, None)
    assert served.served
    assert served.failure is None
    crashed = report_pod(pod(waiting("CrashLoopBackOff", "", exitCode=1, reason="Error")), served)
    assert isinstance(crashed, PodReport)
    assert crashed.failure is not None
    assert crashed.failure.reason == "CrashLoop"
