"""What the operator and the gateway both read of a Function's conditions (the
``metav1.Condition`` shape): the status words, finding one condition, and the replica
faults the operator writes and the gateway answers cold requests with. Building and
merging conditions is the operator's alone (hanshu_operator.conditions)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


def find(conditions: Iterable[Mapping[str, Any]] | None, kind: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or () if c.get("type") == kind), None)


# DeploymentReady reasons that say a Function's replicas cannot start, or keep failing, and
# will not until something changes (the spec, an image, a Secret, the cluster's capacity).
# The operator writes them; the gateway answers a cold request for such a Function at once
# instead of holding it for the whole cold-start timeout.
REPLICA_FAULT_REASONS = frozenset({
    "ImagePullFailed", "Unschedulable", "CrashLoop", "OutOfMemory", "ContainerConfigError",
    "RuntimeStartupFailed", "ProgressDeadlineExceeded", "ReplicaFailure",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class ReplicaFault:
    reason: str
    message: str


def replica_fault(function: Mapping[str, Any]) -> ReplicaFault | None:
    """Why a Function's replicas cannot start, as its status says; None when they can (or
    may), and when the status describes an older spec than the object's: the change may
    be the fix, and the operator has not looked yet."""
    status = function.get("status") or {}
    generation = (function.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and int(generation) > int(observed):
        return None
    condition = find(status.get("conditions"), "DeploymentReady")
    if condition is None or condition.get("status") != FALSE:
        return None
    reason = str(condition.get("reason") or "")
    if reason not in REPLICA_FAULT_REASONS:
        return None
    return ReplicaFault(reason, str(condition.get("message") or ""))
