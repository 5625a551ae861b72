"""What a Function's status says, decided by pure functions of what the operator observed.

Knative's model: dependent conditions (ConfigurationValid, CodeReady, DeploymentReady), a
Ready that summarises them, and Active, which says whether replicas run (a Function scaled
to zero is Ready: the next request wakes it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hanshu_api.conditions import FALSE, TRUE, UNKNOWN, Condition, find, summarize

# Pod waiting reasons that will not heal without a change from the user.
_STUCK_WAITING = {
    "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
}  # fmt: skip

DEPENDENTS = ("ConfigurationValid", "CodeReady", "DeploymentReady")


def pod_fault(pod: Mapping[str, Any]) -> str | None:
    """Why a function pod cannot run, in the runtime's own words when it left any."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        last = (status.get("lastState") or {}).get("terminated") or {}
        terminated = state.get("terminated") or last
        waiting = state.get("waiting") or {}
        if terminated and terminated.get("exitCode", 0) != 0:
            message = (terminated.get("message") or "").strip()
            lines = [line for line in message.splitlines() if line.strip()]
            detail = lines[-1] if lines else terminated.get("reason", "Error")
            return f"the runtime exited with code {terminated.get('exitCode')}: {detail}"
        if waiting.get("reason") in _STUCK_WAITING:
            return f"{waiting['reason']}: {waiting.get('message', '').strip()}".rstrip(": ")
    return None


def deployment_conditions(
    deployment: Mapping[str, Any] | None, runtime_fault: str | None
) -> tuple[Condition, Condition]:
    """(DeploymentReady, Active) from the Deployment and what its pods reported."""
    if deployment is None:
        return (
            Condition(
                "DeploymentReady",
                UNKNOWN,
                "DeploymentPending",
                "waiting for the Deployment to be created",
            ),
            Condition("Active", FALSE, "NoDeployment", "no Deployment yet"),
        )
    desired = int((deployment.get("spec") or {}).get("replicas") or 0)
    status = deployment.get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    active = (
        Condition("Active", TRUE, "Serving", f"{ready} replica(s) ready")
        if ready > 0
        else Condition(
            "Active",
            FALSE,
            "ScaledToZero" if desired == 0 else "NoReadyReplicas",
            "no replica is running; the next request starts one"
            if desired == 0
            else f"0 of {desired} replica(s) ready",
        )
    )
    if runtime_fault is not None:
        return (Condition("DeploymentReady", FALSE, "RuntimeStartupFailed", runtime_fault), active)
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("status") == "False":
            return (
                Condition(
                    "DeploymentReady",
                    FALSE,
                    condition.get("reason") or "NotProgressing",
                    condition.get("message") or "the roll-out is stuck",
                ),
                active,
            )
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return (
                Condition(
                    "DeploymentReady",
                    FALSE,
                    "ReplicaFailure",
                    condition.get("message") or "replicas cannot be created",
                ),
                active,
            )
    if desired == 0:
        return (
            Condition(
                "DeploymentReady",
                TRUE,
                "ScaledToZero",
                "no replicas while idle; the first request starts one",
            ),
            active,
        )
    if ready > 0:
        return (
            Condition(
                "DeploymentReady", TRUE, "Available", f"{ready} of {desired} replica(s) ready"
            ),
            active,
        )
    return (
        Condition(
            "DeploymentReady",
            UNKNOWN,
            "Starting",
            f"0 of {desired} replica(s) ready; waiting for the first to start",
        ),
        active,
    )


def previous_dependent(conditions: Iterable[Mapping[str, Any]] | None, kind: str) -> Condition:
    found = find(conditions, kind)
    if found is None:
        return Condition(kind, UNKNOWN, "NotReconciled", "the operator has not checked this yet")
    return Condition(
        kind, str(found.get("status")), str(found.get("reason", "")), str(found.get("message", ""))
    )


def function_conditions(
    configuration: Condition, code: Condition, deployment_ready: Condition, active: Condition
) -> list[Condition]:
    ready = summarize(
        [configuration, code, deployment_ready], "Ready", "the Function is ready to serve"
    )
    return [ready, configuration, code, deployment_ready, active]


def replica_counts(deployment: Mapping[str, Any] | None) -> dict[str, int]:
    if deployment is None:
        return {"replicas": 0, "readyReplicas": 0, "desiredReplicas": 0}
    status = deployment.get("status") or {}
    return {
        "replicas": int(status.get("replicas") or 0),
        "readyReplicas": int(status.get("readyReplicas") or 0),
        "desiredReplicas": int((deployment.get("spec") or {}).get("replicas") or 0),
    }
