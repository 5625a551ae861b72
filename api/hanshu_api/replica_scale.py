"""A Function's replica count written through its Deployment's scale subresource, under
one field manager: the autoscaler's decisions and the operator's moves into new min / max
bounds both write it, so managedFields name one owner of spec.replicas (the operator's
own apply leaves the field alone after creation)."""

from __future__ import annotations

from .kube import MERGE_PATCH, KubeClient, path_for
from .platform import FunctionKey

# Who owns a Deployment's spec.replicas once it exists; named on every write so
# managedFields say who scaled.
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
