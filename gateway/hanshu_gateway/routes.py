"""HTTP Triggers as a route table: host, then the longest path prefix, then the method.

Paths are compared as decoded segments (see ``target``): a prefix matches whole segments,
however the caller spelled them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from hanshu_api.models import HttpRoute
from hanshu_api.platform import FunctionKey
from hanshu_api.route_claims import prefix_segments

from .target import Target


@dataclass(frozen=True, slots=True)
class Route:
    namespace: str
    trigger: str
    function: str
    http: HttpRoute
    # The Trigger's path as decoded segments, worked out once rather than per request.
    prefix: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", prefix_segments(self.http.path))

    @property
    def function_key(self) -> FunctionKey:
        return (self.namespace, self.function)

    def allows(self, method: str) -> bool:
        methods = self.http.methods
        return not methods or method in methods or (method == "HEAD" and "GET" in methods)

    def upstream_target(self, target: Target) -> Target:
        """The target the Function sees: the prefix's segments stripped, when the Trigger
        says so, by count (the raw spelling of a segment may differ from the Trigger's)."""
        return target.without_prefix(len(self.prefix)) if self.http.strip_prefix else target


@dataclass(frozen=True, slots=True)
class Match:
    route: Route | None
    allowed_methods: tuple[str, ...] = ()  # when the path matched but the method did not


def _host_rank(route_host: str, host: str) -> int | None:
    """3: exact host, 2: wildcard, 1: any host; None: no match."""
    if not route_host:
        return 1
    if route_host.startswith("*."):
        return 2 if host.endswith(route_host[1:]) and host != route_host[2:] else None
    return 3 if host == route_host else None


class RouteTable:
    def __init__(self, routes: Iterable[Route] = ()) -> None:
        # Most specific first: the host rank is checked per request, the prefix length here.
        self._routes = sorted(routes, key=lambda route: len(route.prefix), reverse=True)

    def __len__(self) -> int:
        return len(self._routes)

    def match(self, host: str, target: Target, method: str) -> Match:
        """The most specific (host rank, prefix length) group of routes whose prefix the
        target's decoded segments start with decides: the route in it that allows the
        method, else a 405 listing what it allows."""
        host = host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()
        path = target.decoded
        best: tuple[int, int] | None = None
        group: list[Route] = []
        for route in self._routes:
            rank = _host_rank(route.http.host.split(":", 1)[0], host)
            if rank is None or path[: len(route.prefix)] != route.prefix:
                continue
            key = (rank, len(route.prefix))
            if best is None or key > best:
                best, group = key, [route]
            elif key == best:
                group.append(route)
        for route in group:
            if route.allows(method):
                return Match(route)
        allowed = sorted({m for route in group for m in route.http.methods})
        return Match(None, tuple(allowed))
