"""Conditions in the ``metav1.Condition`` shape, Knative style: ``Ready`` summarises the
rest. What the gateway reads too (the status words, ``find``, replica faults) is in
hanshu_api.conditions."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hanshu_api.conditions import FALSE as FALSE
from hanshu_api.conditions import TRUE as TRUE
from hanshu_api.conditions import UNKNOWN as UNKNOWN
from hanshu_api.conditions import find as find


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
