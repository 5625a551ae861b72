"""The two narrow seams between Hanshu and the platform it runs on.

"Where are this function's ready endpoints" (the gateway listens) and "set this function's
replica count" (the autoscaler calls). Kubernetes implements them with EndpointSlices and
the Deployment scale subresource; ``local_platform`` implements them with runtime
processes on loopback, for tests and the cluster-less developer mode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

FunctionKey = tuple[str, str]  # (namespace, name)


class Endpoint(NamedTuple):
    """A replica's address. A named tuple, not a dataclass: the gateway hashes endpoints
    about eight times per request (in-flight counts, penalties, idle connections), and a
    dataclass's hash is a Python call that builds a tuple each time (docs/architecture.md,
    "Measured choices")."""

    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


EndpointListener = Callable[[FunctionKey, Sequence[Endpoint]], None]


class ReplicaScaler(Protocol):
    async def set_replicas(self, key: FunctionKey, replicas: int) -> None: ...

    def current_replicas(self, key: FunctionKey) -> int | None:
        """The count last set or observed; None when the Function is unknown."""
        ...
