"""Why a Function's replicas cannot start, decided from what Kubernetes writes on its pods.

Pure functions: a pod's status in, a reason and a message that says what to do out. The
shapes read are the ones the kubelet and the scheduler write (core/v1 PodStatus):

- ``status.conditions[type=PodScheduled]`` ``status: "False"``, ``reason: Unschedulable``,
  the scheduler's ``message`` (``0/3 nodes are available: 3 Insufficient cpu. ...``);
- ``status.containerStatuses[].state.waiting.reason`` / ``.message``: ``ErrImagePull``,
  ``ImagePullBackOff`` (``Back-off pulling image "..."``), ``InvalidImageName``,
  ``ErrImageNeverPull``, ``CreateContainerConfigError`` (``secret "db" not found``),
  ``CrashLoopBackOff``;
- ``status.containerStatuses[].state.terminated`` and ``.lastState.terminated``:
  ``reason`` (``OOMKilled``, ``Error``), ``exitCode``, and ``message``: the termination
  log, where the runtime writes its one start-up fault line (``Runtime.X: ... Fix: ...``),
  else the log's tail (``terminationMessagePolicy: FallbackToLogsOnError``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hanshu_api import LABEL_FUNCTION, RUNTIME_CONTAINER
from hanshu_api.function_contract import FUNCTION_VERSION_ENV

IMAGE_PULL_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
CONTAINER_CONFIG_REASONS = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)
# The env variable every pod template carries with the Function's generation: a spec change
# gives the template a new value, so a pod with an older one predates the user's last change.
VERSION_ENV = FUNCTION_VERSION_ENV
# The runtime's start-up fault line (hanshu_runtime.faults.StartupFault.one_line).
_RUNTIME_LINE = re.compile(r"^Runtime\.\w+: ")


@dataclass(frozen=True, slots=True)
class StartFailure:
    """Why replicas cannot start: a DeploymentReady reason and a message with the fix."""

    reason: str
    message: str
    # What stays the same while the kubelet retries one failure (no counts, no back-off
    # delays): one Warning Event per signature, not one per retry.
    signature: str = ""
    # A back-off restatement that adds nothing to the error it follows (ImagePullBackOff's
    # 'Back-off pulling image' after ErrImagePull's registry error): the error is kept.
    restated: bool = False


@dataclass(frozen=True, slots=True)
class PodReport:
    """What the operator keeps of one function pod between its events."""

    name: str
    version: str | None
    # The pod has been ready at least once: a replica that then exits is crash-looping,
    # not failing to start.
    served: bool
    failure: StartFailure | None
    summary: str


def _env_version(pod_spec: Mapping[str, Any]) -> str | None:
    containers = pod_spec.get("containers") or []
    container = next((c for c in containers if c.get("name") == RUNTIME_CONTAINER), None)
    for variable in (container or {}).get("env") or []:
        if variable.get("name") == VERSION_ENV:
            return str(variable.get("value"))
    return None


def pod_version(pod: Mapping[str, Any]) -> str | None:
    return _env_version(pod.get("spec") or {})


def deployment_version(deployment: Mapping[str, Any] | None) -> str | None:
    template = ((deployment or {}).get("spec") or {}).get("template") or {}
    return _env_version(template.get("spec") or {})


def pod_ready(pod: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _container_spec(pod: Mapping[str, Any], name: str | None) -> Mapping[str, Any]:
    spec = pod.get("spec") or {}
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        if container.get("name") == name:
            return dict(container)
    return {}


def _statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    return list(status.get("initContainerStatuses") or []) + list(
        status.get("containerStatuses") or []
    )


def _unschedulable(pod: Mapping[str, Any]) -> StartFailure | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            said = (condition.get("message") or "no node fits the pod").strip().rstrip(".")
            return StartFailure(
                "Unschedulable",
                f"no node can run a replica: {said}. Fix: lower spec.resources.requests to "
                "what a node has free, relax spec.nodeSelector or spec.tolerations, or add "
                "nodes",
            )
    return None


def _image_pull(image: str, waiting: Mapping[str, Any]) -> StartFailure:
    reason = str(waiting.get("reason"))
    said = (waiting.get("message") or "").strip()
    detail = f"{reason}: {said}" if said else reason
    return StartFailure(
        "ImagePullFailed",
        f'the image "{image}" cannot be pulled ({detail}). Fix: correct the image name or '
        "tag (spec.code.image, or the platform's runtime image), or let the nodes pull it "
        "(imagePullSecrets on the service account of spec.serviceAccountName)",
        signature=image,
        restated=reason == "ImagePullBackOff",
    )


def _config_error(waiting: Mapping[str, Any]) -> StartFailure:
    reason = str(waiting.get("reason"))
    said = (waiting.get("message") or "").strip()
    if reason == "CreateContainerConfigError":
        fix = (
            "create the Secret or ConfigMap (or the key) it names, or correct spec.env / "
            "spec.envFrom"
        )
    else:
        fix = "correct what it names (the image's entrypoint, a mount, a security setting)"
    return StartFailure(
        "ContainerConfigError",
        f"a replica's container cannot be created ({reason}: {said or 'no message'}). Fix: {fix}",
        signature=f"{reason}: {said}",
    )


def _last_words(terminated: Mapping[str, Any]) -> str:
    """The runtime's own fault line when it left one, else the last line of the log tail."""
    lines = [line.strip() for line in (terminated.get("message") or "").splitlines()]
    lines = [line for line in lines if line]
    runtime = [line for line in lines if _RUNTIME_LINE.match(line)]
    return (runtime or lines or [""])[-1]


def _out_of_memory(container: Mapping[str, Any], served: bool) -> StartFailure:
    limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    when = "while serving" if served else "while starting (its imports or initializer)"
    if limit:
        return StartFailure(
            "OutOfMemory",
            f"a replica ran out of memory {when} and was killed (OOMKilled, exit code 137) "
            f"at its memory limit of {limit}. Fix: raise spec.resources.limits.memory "
            "(spec.resources replaces the platform's defaults whole: give requests too)",
            signature=str(limit),
        )
    return StartFailure(
        "OutOfMemory",
        f"a replica ran out of memory {when} and was killed (OOMKilled, exit code 137); it "
        "has no memory limit, so the node itself ran short. Fix: set "
        "spec.resources.requests.memory and spec.resources.limits.memory to what it needs",
        signature="",
    )


def _exited(pod: Mapping[str, Any], terminated: Mapping[str, Any], served: bool) -> StartFailure:
    code = terminated.get("exitCode")
    words = _last_words(terminated)
    if _RUNTIME_LINE.match(words) or not served:
        detail = words or str(terminated.get("reason") or "Error")
        return StartFailure(
            "RuntimeStartupFailed",
            f"the runtime exited with code {code}: {detail}",
            signature=f"{code}: {detail}",
        )
    name = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_FUNCTION, "<name>")
    exit_reason = terminated.get("reason") or "Error"
    tail = f": {words}" if words else ""
    return StartFailure(
        "CrashLoop",
        f"a replica that was serving keeps restarting: it last exited with code {code} "
        f"({exit_reason}){tail}. Fix: read its log, kubectl logs --previous -l "
        f"{LABEL_FUNCTION}={name}",
        signature=f"{exit_reason}/{code}",
    )


def start_failure(pod: Mapping[str, Any], served: bool) -> StartFailure | None:
    """Why this pod's replica cannot start or keeps failing; None while it is ready, or
    merely on its way (scheduling, pulling, starting)."""
    if pod_ready(pod):
        return None
    unschedulable = _unschedulable(pod)
    if unschedulable is not None:
        return unschedulable
    for status in _statuses(pod):
        container = _container_spec(pod, status.get("name"))
        state = status.get("state") or {}
        waiting = state.get("waiting") or {}
        image = str(status.get("image") or container.get("image") or "")
        if waiting.get("reason") in IMAGE_PULL_REASONS:
            return _image_pull(image, waiting)
        if waiting.get("reason") in CONTAINER_CONFIG_REASONS:
            return _config_error(waiting)
        # Between crashes the container is waiting (CrashLoopBackOff) or running again but
        # not ready: the last crash still says why, so the fault holds through the retries.
        terminated = state.get("terminated") or (status.get("lastState") or {}).get("terminated")
        if not terminated or terminated.get("exitCode", 0) == 0:
            continue
        if terminated.get("reason") == "OOMKilled":
            return _out_of_memory(container, served)
        return _exited(pod, terminated, served)
    return None


def pod_summary(pod: Mapping[str, Any]) -> str:
    """One line on where a pod is: what a progress deadline can tell besides 'too slow'."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    prefix = f"pod {meta.get('name')}: {phase}"
    if pod_ready(pod):
        return f"{prefix}, ready"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"{prefix}, not scheduled ({condition.get('reason') or 'waiting'})"
    for container in _statuses(pod):
        state = container.get("state") or {}
        if "waiting" in state:
            return f"{prefix}, waiting: {(state['waiting'] or {}).get('reason') or 'unknown'}"
        if "running" in state:
            if container.get("started") is False:
                return f"{prefix}, not past its start-up probe (/healthz) yet"
            if not container.get("ready"):
                return f"{prefix}, not ready (its readiness probe /readyz fails)"
        if "terminated" in state:
            return f"{prefix}, exited ({(state['terminated'] or {}).get('reason') or 'Error'})"
    return f"{prefix}, no container started yet"


def report_pod(pod: Mapping[str, Any], previous: PodReport | None) -> PodReport:
    """This pod's report, given what its earlier events said."""
    served = (previous is not None and previous.served) or pod_ready(pod)
    failure = start_failure(pod, served)
    if (
        failure is not None
        and failure.restated
        and previous is not None
        and previous.failure is not None
        and (previous.failure.reason, previous.failure.signature)
        == (failure.reason, failure.signature)
    ):
        failure = previous.failure  # keep the registry's error over 'Back-off pulling'
    name = str((pod.get("metadata") or {}).get("name") or "")
    return PodReport(name, pod_version(pod), served, failure, pod_summary(pod))


def current_reports(
    reports: Iterable[PodReport], deployment: Mapping[str, Any] | None
) -> list[PodReport]:
    """The reports of pods made from the Deployment's present template, by name: a pod from
    before the user's last change (kept by the roll-out until a new one is ready) does not
    speak for the fix."""
    version = deployment_version(deployment)
    return sorted(
        (r for r in reports if version is None or r.version is None or r.version == version),
        key=lambda r: r.name,
    )


def _deployment_condition(
    deployment: Mapping[str, Any], kind: str, status: str
) -> Mapping[str, Any] | None:
    for condition in (deployment.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == status:
            return dict(condition)
    return None


def replica_failure(
    deployment: Mapping[str, Any] | None, reports: Sequence[PodReport]
) -> StartFailure | None:
    """The one failure a Function's status names: the first current pod's (by name, so two
    pods failing differently do not take turns), else what the Deployment says."""
    if deployment is None:
        return None
    current = current_reports(reports, deployment)
    for report in current:
        if report.failure is not None:
            return replace(report.failure, restated=False)
    if int((deployment.get("spec") or {}).get("replicas") or 0) == 0:
        return None  # nothing is meant to run: the next request starts afresh
    stuck = _deployment_condition(deployment, "Progressing", "False")
    if stuck is not None:
        deadline = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
        within = f" within {deadline}s" if deadline else ""
        known = "; ".join(r.summary for r in current) or "no pod of it exists"
        said = (stuck.get("message") or "").strip()
        name = (deployment.get("metadata") or {}).get("name", "<name>")
        return StartFailure(
            str(stuck.get("reason") or "ProgressDeadlineExceeded"),
            f"no replica became ready{within}: {known}"
            + (f" ({said})" if said else "")
            + ". Fix: a replica that runs but never gets ready is stuck in its imports or "
            f"initializer (kubectl logs -l {LABEL_FUNCTION}={name}); one that waits is "
            "still pulling its image or mounting its volumes",
        )
    refused = _deployment_condition(deployment, "ReplicaFailure", "True")
    if refused is not None:
        said = (refused.get("message") or "replicas cannot be created").strip()
        return StartFailure(
            "ReplicaFailure",
            f"Kubernetes refuses to create replicas: {said}. Fix: raise the namespace's "
            "ResourceQuota or lower spec.resources, or correct what an admission policy names",
            signature=said,
        )
    return None
