"""What ``get`` and ``describe`` show, as pure functions of the objects' status."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

Object = Mapping[str, Any]


def condition(obj: Object, kind: str = "Ready") -> Mapping[str, Any] | None:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), None)


def is_current(obj: Object) -> bool:
    """The status describes the object's latest spec (the operator has looked at it)."""
    generation = (obj.get("metadata") or {}).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    return generation is None or (observed is not None and int(observed) >= int(generation))


def ready_text(obj: Object) -> str:
    found = condition(obj)
    if found is None:
        return "Unknown (not reconciled yet)"
    status, reason = str(found.get("status", "Unknown")), str(found.get("reason", ""))
    return f"{status} ({reason})" if reason else status


def replicas_text(obj: Object) -> str:
    status = obj.get("status") or {}
    return f"{int(status.get('readyReplicas') or 0)}/{int(status.get('desiredReplicas') or 0)}"


def last_scale_text(obj: Object) -> str:
    scale = (obj.get("status") or {}).get("lastScale") or {}
    if not scale:
        return "-"
    text = f"-> {scale.get('replicas', '?')}: {scale.get('reason', '')}"
    if scale.get("message"):
        text += f" ({scale['message']})"
    if scale.get("time"):
        text += f" at {scale['time']}"
    return text


def pool_text(obj: Object) -> str:
    """Whether a cold request is served by the namespace's warm pool, and if not why (the
    PoolEligible condition); "-" from an operator that does not say."""
    found = condition(obj, "PoolEligible")
    if found is None:
        return "-"
    if found.get("status") == "True":
        return "yes"
    return f"no ({found.get('reason', '')})"


def pool_size_text(pool: tuple[int, int] | None, namespace: str) -> str:
    if pool is None:
        return f"no warm pool in namespace {namespace}: cold starts start a pod"
    available, size = pool
    return f"warm pool in namespace {namespace}: {available} of {size} pod(s) available"


def function_row(function: Object) -> list[str]:
    """NAME, READY, REPLICAS (ready/desired), LAST SCALE (why), POOL (or why not), URL."""
    return [
        str(function["metadata"]["name"]),
        ready_text(function),
        replicas_text(function),
        last_scale_text(function),
        pool_text(function),
        str((function.get("status") or {}).get("url") or "-"),
    ]


FUNCTION_COLUMNS = ["NAME", "READY", "REPLICAS", "LAST SCALE", "POOL", "URL"]
CONDITION_COLUMNS = ["TYPE", "STATUS", "REASON", "MESSAGE", "SINCE"]
TRIGGER_COLUMNS = ["TRIGGER", "TYPE", "READY", "URL / LAST FIRE"]
EVENT_COLUMNS = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]


def condition_rows(obj: Object) -> list[list[str]]:
    return [
        [
            str(c.get("type", "")),
            str(c.get("status", "")),
            str(c.get("reason", "")),
            str(c.get("message", "")),
            str(c.get("lastTransitionTime", "")),
        ]
        for c in (obj.get("status") or {}).get("conditions") or []
    ]


def trigger_kind(trigger: Object) -> str:
    spec = trigger.get("spec") or {}
    declared = (trigger.get("status") or {}).get("type")
    if declared:
        return str(declared)
    return next((k for k in ("http", "schedule", "objectStorage", "stream") if k in spec), "?")


def triggers_of(triggers: Iterable[Object], function: str) -> list[Object]:
    return [
        t
        for t in triggers
        if ((t.get("spec") or {}).get("functionRef") or {}).get("name") == function
    ]


def trigger_row(trigger: Object) -> list[str]:
    status = trigger.get("status") or {}
    where = status.get("url") or status.get("lastFireTime") or "-"
    if status.get("lag") is not None:
        where = f"{where} (lag {status['lag']})"
    return [
        str(trigger["metadata"]["name"]),
        trigger_kind(trigger),
        ready_text(trigger),
        str(where),
    ]


def _event_time(event: Any) -> datetime.datetime:
    moment = event.last_timestamp or event.event_time or event.first_timestamp
    if isinstance(moment, datetime.datetime):
        return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)
    return datetime.datetime.min.replace(tzinfo=datetime.UTC)


def events_about(events: Iterable[Any], names: set[tuple[str, str]], limit: int = 15) -> list[Any]:
    """The latest Events whose object is one of (kind, name)."""
    chosen = [e for e in events if (e.involved_object.kind, e.involved_object.name) in names]
    return sorted(chosen, key=_event_time)[-limit:]


def event_row(event: Any) -> list[str]:
    moment = _event_time(event)
    seen = "-" if moment.year == 1 else moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    count = f" (x{event.count})" if (event.count or 1) > 1 else ""
    return [
        seen,
        str(event.type or ""),
        str(event.reason or ""),
        f"{event.involved_object.kind}/{event.involved_object.name}",
        f"{event.message or ''}{count}",
    ]
