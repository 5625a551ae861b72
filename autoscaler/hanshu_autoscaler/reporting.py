"""What a decision leaves behind for people: the Function's ``status.lastScale`` (what
``kubectl get fn`` and ``hanshu`` show) and an Event, as the operator wrote them before the
autoscaler was its own component.

The status write is a merge patch of ``lastScale`` alone on the status subresource: the
operator owns the rest of the status (conditions, replica counts, URL) and writes it from
the Deployment it watches, so neither undoes the other."""

from __future__ import annotations

import datetime
from typing import Any

from hanshu_api import API_VERSION, FUNCTION_PLURAL
from hanshu_api.kube import ApiError, KubeClient, path_for
from hanshu_api.kube_events import post_event, rfc3339
from hanshu_api.platform import FunctionKey

from .decisions import Decision

COMPONENT = "hanshu-autoscaler"


def last_scale(decision: Decision, now: datetime.datetime) -> dict[str, Any]:
    return {
        "replicas": decision.replicas,
        "reason": decision.reason,
        "message": decision.message,
        "time": rfc3339(now),
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
        await post_event(
            self.kube, function, "Normal", decision.reason, message, component=COMPONENT, now=now
        )
