"""Kubernetes Events posted by the operator's own client, for code that runs outside kopf's
handler context (a handler's own background work has no kopf event queue). The Event's
shape is ``hanshu_api.kube_events``' (the autoscaler posts the same)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hanshu_api import kube_events
from hanshu_api.kube import KubeClient

COMPONENT = "hanshu-operator"


async def post_event(
    kube: KubeClient, involved: Mapping[str, Any], type_: str, reason: str, message: str
) -> None:
    await kube_events.post_event(kube, involved, type_, reason, message, component=COMPONENT)
