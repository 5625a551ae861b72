"""What the gateway knows: routes, each Function's limits and replicas, API keys.

Sources (Kubernetes watches, or manifest files in the developer mode) feed it; the request
path only reads it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from hanshu_api.models import FunctionSpec, RateLimit, TriggerSpec
from hanshu_api.platform import Endpoint, FunctionKey

from .metrics import FunctionMeters
from .pool import EndpointPool
from .protect import TokenBucket
from .routes import Route, RouteTable
from .stats import FunctionStats

# (namespace, secret, key) -> the Secret key's value, or None when it does not exist.
SecretReader = Callable[[str, str, str], Awaitable[str | None]]


@dataclass
class FunctionEntry:
    key: FunctionKey
    concurrency: int
    timeout_seconds: float
    memory_gb: float
    pool: EndpointPool
    stats: FunctionStats
    meters: FunctionMeters


class Catalog:
    def __init__(self, queue_limit: int, read_secret: SecretReader) -> None:
        self.queue_limit = queue_limit
        self.read_secret = read_secret
        self.routes = RouteTable()
        self.functions: dict[FunctionKey, FunctionEntry] = {}
        self._buckets: dict[tuple[str, str], tuple[RateLimit, TokenBucket]] = {}
        self._pending_endpoints: dict[FunctionKey, Sequence[Endpoint]] = {}

    def set_function(self, key: FunctionKey, spec: FunctionSpec | None) -> None:
        if spec is None:
            self.functions.pop(key, None)
            return
        entry = self.functions.get(key)
        if entry is None:
            pool = EndpointPool(spec.concurrency, self.queue_limit)
            entry = FunctionEntry(
                key,
                spec.concurrency,
                spec.timeout_seconds,
                spec.memory_mb / 1024,
                pool,
                FunctionStats(),
                FunctionMeters(*key),
            )
            self.functions[key] = entry
            if key in self._pending_endpoints:
                pool.set_ready(self._pending_endpoints.pop(key))
        else:
            entry.concurrency = entry.pool.concurrency = spec.concurrency
            entry.timeout_seconds = spec.timeout_seconds
            entry.memory_gb = spec.memory_mb / 1024

    def set_endpoints(self, key: FunctionKey, endpoints: Sequence[Endpoint]) -> None:
        entry = self.functions.get(key)
        if entry is None:  # endpoints can be seen before the Function
            self._pending_endpoints[key] = endpoints
        else:
            entry.pool.set_ready(endpoints)

    def set_triggers(self, triggers: Iterable[tuple[str, str, TriggerSpec]]) -> None:
        routes = [
            Route(namespace, name, spec.function_name, spec.http)
            for namespace, name, spec in triggers
            if spec.http is not None
        ]
        self.routes = RouteTable(routes)
        live = {(r.namespace, r.trigger) for r in routes}
        for key in list(self._buckets):
            if key not in live:
                del self._buckets[key]

    def bucket(self, route: Route) -> TokenBucket | None:
        limit = route.http.rate_limit
        if limit is None:
            return None
        key = (route.namespace, route.trigger)
        known = self._buckets.get(key)
        if known is None or known[0] != limit:  # a changed limit starts a fresh bucket
            known = (limit, TokenBucket(limit.requests_per_second, limit.burst))
            self._buckets[key] = known
        return known[1]

    def all_stats(self) -> list[tuple[FunctionKey, FunctionStats]]:
        return [(key, entry.stats) for key, entry in self.functions.items()]
