"""HTTP Triggers as a route table: host, then the longest path prefix, then the method.

Paths are compared as decoded segments (see ``target``): a prefix matches whole segments,
however the caller spelled them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from hanshu_api.models import HttpRoute
from hanshu_api.platform import FunctionKey
from hanshu_api.route_claims import prefix_segments
from hanshu_api.versions import version_key, version_label

from .target import Target


@dataclass(frozen=True, slots=True)
class Route:
    namespace: str
    trigger: str
    function: str
    http: HttpRoute
    # What the Trigger calls: $LATEST (both None), one published version, or an alias
    # (resolved per request, see ``version_routing``).
    version: int | None = None
    alias: str | None = None
    # The Trigger's path as decoded segments, worked out once rather than per request.
    prefix: tuple[str, ...] = field(init=False, repr=False, compare=False)
    # Worked out once too: the key of the Function (or version) a request goes to, None
    # for an alias (whose key in the catalog's aliases is ``alias_key``); the ``version``
    # label its refusals are counted under; whether replies name the version that served.
    key: FunctionKey | None = field(init=False, repr=False, compare=False)
    alias_key: tuple[str, str, str] | None = field(init=False, repr=False, compare=False)
    version_label: str = field(init=False, repr=False, compare=False)
    names_version: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", prefix_segments(self.http.path))
        key = None if self.alias else (self.namespace, version_key(self.function, self.version))
        object.__setattr__(self, "key", key)
        alias_key = (self.namespace, self.function, self.alias) if self.alias else None
        object.__setattr__(self, "alias_key", alias_key)
        # A refusal before an alias picked a version is counted under "" (no version ran).
        label = "" if self.alias else version_label(self.version)
        object.__setattr__(self, "version_label", label)
        object.__setattr__(self, "names_version", self.version is not None or bool(self.alias))

    @property
    def function_key(self) -> FunctionKey:
        """The Function's own key ($LATEST), whatever version or alias the route calls."""
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


RouteGroup = list[Route]


class _ByPrefix:
    """The routes of one host (or host pattern), by prefix; the longest prefix held bounds
    how far a path is looked up, so a caller's path of 10,000 segments costs no more than
    the deepest Trigger's."""

    __slots__ = ("groups", "lengths", "longest")

    def __init__(self) -> None:
        self.groups: dict[tuple[str, ...], RouteGroup] = {}
        self.lengths: dict[int, int] = {}  # prefix length -> routes with it
        self.longest = 0

    def add(self, route: Route) -> None:
        self.groups.setdefault(route.prefix, []).append(route)
        size = len(route.prefix)
        self.lengths[size] = self.lengths.get(size, 0) + 1
        self.longest = max(self.longest, size)

    def remove(self, route: Route) -> None:
        group = self.groups.get(route.prefix, [])
        kept = [r for r in group if (r.namespace, r.trigger) != (route.namespace, route.trigger)]
        if len(kept) == len(group):
            return
        if kept:
            self.groups[route.prefix] = kept
        else:
            del self.groups[route.prefix]
        size = len(route.prefix)
        self.lengths[size] -= 1
        if not self.lengths[size]:
            del self.lengths[size]
            self.longest = max(self.lengths, default=0)

    def longest_match(self, path: tuple[str, ...]) -> tuple[int, RouteGroup]:
        """(prefix length, routes) of the longest prefix the path starts with; (-1, [])."""
        for size in range(min(len(path), self.longest), -1, -1):
            group = self.groups.get(path[:size])
            if group:
                return size, group
        return -1, []

    def __bool__(self) -> bool:
        return bool(self.groups)


class RouteTable:
    """Routes indexed by exact host, by wildcard suffix and for any host, each by prefix.

    A match costs a few dictionary lookups per path segment (up to the deepest prefix of
    the host), whatever the number of routes; ``add`` and ``remove`` cost the routes
    sharing one host and prefix. ``version`` changes with every change, so a cache of
    matches knows when to forget.
    """

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self._exact: dict[str, _ByPrefix] = {}
        self._wildcard: dict[str, _ByPrefix] = {}  # "*.example.com" under ".example.com"
        self._any = _ByPrefix()
        self._by_trigger: dict[tuple[str, str], Route] = {}
        self.version = 0
        self.replace_all(routes)

    def replace_all(self, routes: Iterable[Route]) -> None:
        """Serve exactly these routes (a full list): one pass, no route judged twice."""
        self._exact, self._wildcard, self._any = {}, {}, _ByPrefix()
        self._by_trigger = {}
        for route in routes:
            self._index_of(route, create=True).add(route)  # type: ignore[union-attr]
            self._by_trigger[(route.namespace, route.trigger)] = route
        self.version += 1

    def __len__(self) -> int:
        return len(self._by_trigger)

    def __iter__(self) -> Iterator[Route]:
        return iter(list(self._by_trigger.values()))

    def of_trigger(self, namespace: str, trigger: str) -> Route | None:
        return self._by_trigger.get((namespace, trigger))

    def _index_of(self, route: Route, create: bool) -> _ByPrefix | None:
        host = route.http.host.split(":", 1)[0].lower()
        if not host:
            return self._any
        table, name = (self._wildcard, host[1:]) if host.startswith("*.") else (self._exact, host)
        if create:
            return table.setdefault(name, _ByPrefix())
        return table.get(name)

    def add(self, route: Route) -> None:
        """Serve a route; a route its Trigger served before is replaced."""
        self.remove(route.namespace, route.trigger)
        index = self._index_of(route, create=True)
        assert index is not None
        index.add(route)
        self._by_trigger[(route.namespace, route.trigger)] = route
        self.version += 1

    def remove(self, namespace: str, trigger: str) -> None:
        route = self._by_trigger.pop((namespace, trigger), None)
        if route is None:
            return
        index = self._index_of(route, create=False)
        if index is not None:
            index.remove(route)
            if not index and index is not self._any:
                host = route.http.host.split(":", 1)[0].lower()
                table = self._wildcard if host.startswith("*.") else self._exact
                table.pop(host[1:] if host.startswith("*.") else host, None)
        self.version += 1

    def _wildcard_match(self, host: str, path: tuple[str, ...]) -> RouteGroup:
        # Every suffix of the host from a dot on: "a.b.io" is matched by *.b.io and *.io.
        best, group = -1, []
        dot = host.find(".")
        while dot != -1:
            index = self._wildcard.get(host[dot:])
            if index is not None:
                size, found = index.longest_match(path)
                if size > best:
                    best, group = size, list(found)
                elif size == best and size >= 0:
                    group += found
            dot = host.find(".", dot + 1)
        return group

    def match(self, host: str, target: Target, method: str) -> Match:
        """The most specific group of routes whose prefix the target's decoded segments
        start with decides (exact host, then wildcard host, then any host; then the
        longest prefix): the route in it that allows the method, else a 405 listing what
        it allows."""
        host = host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()
        path = target.decoded
        group: RouteGroup = []
        exact = self._exact.get(host)
        if exact is not None:
            group = exact.longest_match(path)[1]
        if not group and self._wildcard:
            group = self._wildcard_match(host, path)
        if not group:
            group = self._any.longest_match(path)[1]
        for route in group:
            if route.allows(method):
                return Match(route)
        allowed = sorted({m for route in group for m in route.http.methods})
        return Match(None, tuple(allowed))
