"""What a decision leaves behind for people: the Function's ``status.lastScale`` (what
``kubectl get fn`` and ``hanshu`` show) and an Event, as the operator wrote them before the
autoscaler was its own component.

The status write is a merge patch of ``lastScale`` alone on the status subresource: the
operator owns the rest of the status (conditions, replica counts, URL) and writes it from
the Deployment it watches, so neither undoes the other."""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from hanshu_api import API_VERSION, FUNCTION_PLURAL
from hanshu_api.kube import ApiError, KubeClient, path_for
from hanshu_api.platform import FunctionKey

from .decisions import Decision

log = logging.getLogger("hanshu.autoscaler")
COMPONENT = "hanshu-autoscaler"


def rfc3339(moment: datetime.datetime) -> str:
    """The timestamp form of Kubernetes status fields (UTC, whole seconds)."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def last_scale(decision: Decision, now: datetime.datetime) -> dict[str, Any]:
    return {
        "replicas": decision.replicas,
        "reason": decision.reason,
        "message": decision.message,
        "time": rfc3339(now),
    }


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
        "source": {"component": COMPONENT},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "reportingComponent": COMPONENT,
    }


class KubeReporter:
    """The service's ``on_scaled``: the status field, then the Event."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    async def __call__(self, key: FunctionKey, decision: Decision, previous: int) -> None:
        namespace, name = key
        now = datetime.datetime.now(datetime.UTC)
        try:
            function = await self.kube.merge_patch(
                path_for(API_VERSION, FUNCTION_PLURAL, namespace, name, "status"),
                {"status": {"lastScale": last_scale(decision, now)}},
            )
        except ApiError as error:
            if error.status == 404:
                return  # the Function is gone
            raise
        message = f"{previous} -> {decision.replicas} replicas: {decision.message}"
        event = build_event(function, "Normal", decision.reason, message, now)
        try:
            await self.kube.create(path_for("v1", "events", namespace), event)
        except (ApiError, OSError) as error:  # an Event is worth a try, never a failure
            log.warning("could not post the %s event: %s", decision.reason, error)
