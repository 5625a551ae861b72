"""'Set this function's replica count' on Kubernetes: the Deployment's scale subresource.

Cost: one int per Function (its Deployment's spec.replicas, as last written or watched),
dropped when the Deployment goes."""

from __future__ import annotations

from hanshu_api.kube import MERGE_PATCH, KubeClient, path_for
from hanshu_api.platform import FunctionKey

# Who owns a Deployment's spec.replicas once it exists (the operator hands the field to
# this manager when it creates the Deployment, and never applies it again); named on every
# write so managedFields say who scaled.
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


class KubeScaler:
    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube
        # spec.replicas of each Function's Deployment, as last written or watched.
        self.replicas: dict[FunctionKey, int] = {}

    def observe(self, key: FunctionKey, replicas: int | None) -> None:
        if replicas is None:
            self.replicas.pop(key, None)
        else:
            self.replicas[key] = replicas

    def current_replicas(self, key: FunctionKey) -> int | None:
        return self.replicas.get(key)

    async def set_replicas(self, key: FunctionKey, replicas: int) -> None:
        await scale(self._kube, key, replicas)
        self.replicas[key] = replicas
