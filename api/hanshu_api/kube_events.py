"""Kubernetes Events posted by a component's own client (the operator's background work,
which has no kopf event queue, and the autoscaler): one shape, so ``kubectl describe``
shows both components' Events alike."""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from .kube import ApiError, KubeClient, path_for


def rfc3339(moment: datetime.datetime) -> str:
    """The timestamp form of Kubernetes fields (UTC, whole seconds)."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_event(
    involved: Mapping[str, Any],
    type_: str,
    reason: str,
    message: str,
    now: datetime.datetime,
    component: str,
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
        "source": {"component": component},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "reportingComponent": component,
    }


async def post_event(
    kube: KubeClient,
    involved: Mapping[str, Any],
    type_: str,
    reason: str,
    message: str,
    *,
    component: str,
    now: datetime.datetime | None = None,
) -> None:
    """Post an Event about ``involved`` as ``component`` (e.g. ``hanshu-operator``); a
    failure is logged, never raised: an Event is worth a try, never a failure."""
    moment = now if now is not None else datetime.datetime.now(datetime.UTC)
    event = build_event(involved, type_, reason, message, moment, component)
    try:
        await kube.create(path_for("v1", "events", event["metadata"]["namespace"]), event)
    except (ApiError, OSError) as error:
        # The component's own logger ("hanshu.operator", "hanshu.autoscaler"), as before
        # the function moved here.
        log = logging.getLogger("hanshu." + component.removeprefix("hanshu-"))
        log.warning("could not post the %s event: %s", reason, error)
