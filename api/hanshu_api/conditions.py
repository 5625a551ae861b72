"""Conditions in the ``metav1.Condition`` shape, Knative style: ``Ready`` summarises the rest."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str = ""


def rfc3339(moment: datetime.datetime) -> str:
    """The timestamp form of Kubernetes status fields (UTC, whole seconds)."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339() -> str:
    return rfc3339(datetime.datetime.now(datetime.UTC))


def summarize(dependents: Sequence[Condition], ready_reason: str, ready_message: str) -> Condition:
    """Ready is False on the first False dependent, Unknown on the first Unknown, else True."""
    for status in (FALSE, UNKNOWN):
        for condition in dependents:
            if condition.status == status:
                return Condition("Ready", status, condition.reason, condition.message)
    return Condition("Ready", TRUE, ready_reason, ready_message)


def merge_conditions(
    previous: Iterable[Mapping[str, Any]] | None,
    current: Iterable[Condition],
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """The new condition list; ``lastTransitionTime`` moves only when a status flips."""
    before = {c.get("type"): c for c in previous or ()}
    merged = []
    for condition in current:
        old = before.get(condition.type)
        changed = old is None or old.get("status") != condition.status
        entry: dict[str, Any] = {
            "type": condition.type,
            "status": condition.status,
            "reason": condition.reason,
            "message": condition.message,
            "lastTransitionTime": now if changed or old is None else old["lastTransitionTime"],
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        merged.append(entry)
    return merged


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
