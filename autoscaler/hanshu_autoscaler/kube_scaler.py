"""'Set this function's replica count' on Kubernetes: the Deployment's scale subresource.

Cost: one int per Function (its Deployment's spec.replicas, as last written or watched),
dropped when the Deployment goes."""

from __future__ import annotations

from hanshu_api.kube import KubeClient
from hanshu_api.platform import FunctionKey
from hanshu_api.replica_scale import scale


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
