"""The operator's own scale writes: a Deployment's replicas moved into new min / max bounds,
through the scale subresource under the autoscaler's field manager (the autoscaler,
hanshu_autoscaler, owns the field; the operator only hands it over at creation)."""

from __future__ import annotations

from hanshu_api.kube import MERGE_PATCH, KubeClient, path_for
from hanshu_api.platform import FunctionKey

# Who owns a Deployment's spec.replicas once it exists (the operator's own manager never
# applies it after creation); the same name as hanshu_autoscaler's, so one manager holds it.
REPLICAS_MANAGER = "hanshu-autoscaler"


async def scale(kube: KubeClient, key: FunctionKey, replicas: int) -> None:
    namespace, name = key
    await kube.request(
        "PATCH",
        path_for("apps/v1", "deployments", namespace, name, "scale"),
        body={"spec": {"replicas": replicas}},
        content_type=MERGE_PATCH,
        params={"fieldManager": REPLICAS_MANAGER},
    )
