"""The two narrow seams between Hanshu and the platform it runs on.

"Where are this function's ready endpoints" (the gateway listens) and "set this function's
replica count" (the autoscaler calls). Kubernetes implements them with EndpointSlices and
the Deployment scale subresource; ``local_platform`` implements them with runtime
processes on loopback, for tests and the cluster-less developer mode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

FunctionKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


EndpointListener = Callable[[FunctionKey, Sequence[Endpoint]], None]


class EndpointSource(Protocol):
    """Tells listeners the full set of ready endpoints of a Function whenever it changes."""

    def listen(self, listener: EndpointListener) -> None: ...


class ReplicaScaler(Protocol):
    async def set_replicas(self, key: FunctionKey, replicas: int) -> None: ...

    def current_replicas(self, key: FunctionKey) -> int | None:
        """The count last set or observed; None when the Function is unknown."""
        ...
