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


class WarmPool(Protocol):
    """The third seam: a pool of generic runtime replicas that take a cold Function's
    requests while its own replicas start (``hanshu_api.warm_pool``). Kubernetes implements
    it with pool pods claimed by relabelling; the local platform with pre-started runtime
    processes."""

    async def specialize(self, key: FunctionKey) -> Endpoint | None:
        """A pool replica specialized for this Function and answering, or None when the
        Function is not eligible or no pool replica could be specialized (never raises: a
        replica that fails is discarded and the next tried; the caller's request then takes
        the ordinary path)."""
        ...

    async def retire(self, key: FunctionKey, endpoint: Endpoint) -> None:
        """The Function's own replicas are ready (or it idled): the specialized replica
        leaves for good, after its requests in flight finish. Never returned to the pool."""
        ...
