"""Kubernetes Events posted by our own client, for code that runs outside kopf's handler
context (a handler's own background work has no kopf event queue)."""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from hanshu_api.kube import ApiError, KubeClient, path_for

from .conditions import rfc3339

log = logging.getLogger("hanshu.operator")


def build_event(
    involved: Mapping[str, Any], type_: str, reason: str, message: str, now: datetime.datetime
) -> dict[str, Any]:
    meta = involved.get("metadata") or {}
    stamp = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta.get('name')}.{uuid.uuid4().hex[:12]}",
            "namespace": meta.get("namespace"),
        },
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": "hanshu-operator"},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "reportingComponent": "hanshu-operator",
    }


async def post_event(
    kube: KubeClient, involved: Mapping[str, Any], type_: str, reason: str, message: str
) -> None:
    event = build_event(involved, type_, reason, message, datetime.datetime.now(datetime.UTC))
    try:
        await kube.create(path_for("v1", "events", event["metadata"]["namespace"]), event)
    except (ApiError, OSError) as error:  # an Event is worth a try, never a failure
        log.warning("could not post the %s event: %s", reason, error)
