"""Which route serves a public request, and the target its Function sees; with a cache of
the requests routed lately."""

from __future__ import annotations

from dataclasses import dataclass

from . import metrics
from .catalog import Catalog
from .faults import BadRequest, MethodNotAllowed, NotFound
from .routes import Route, RouteTable
from .target import BadTarget, Target, checked_host, parse_target

# Requests routed lately, by (target as sent, host, method): most traffic repeats a few, and
# parsing the target and matching it was a fifth of the gateway's own time per request.
# Emptied when full (paths with ids in them rarely repeat) and whenever the table changes.
ROUTED_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class Routed:
    route: Route
    target: Target  # as the Function sees it: the prefix stripped when the Trigger says so
    host: str  # what was routed on: the Host header, or an absolute-form target's host


def find_route(table: RouteTable, raw_path: str, host_header: str, method: str) -> Routed:
    """The route of a request, or the fault refusing it (400 for a target or Host that is
    not usable, 405 with what the path allows, 404 NoRoute)."""
    try:
        target = parse_target(raw_path)
        host = checked_host(host_header)
    except BadTarget as bad:
        raise BadRequest(str(bad), error_type=bad.error_type) from None
    match = table.match(host, target, method)
    if match.route is None and match.allowed_methods:
        allowed = ", ".join(match.allowed_methods)
        raise MethodNotAllowed(f"{method} is not allowed here; use {allowed}", allow=allowed)
    upstream = match.route.upstream_target(target) if match.route is not None else None
    # A replica's own /_hanshu/ paths are not public, whatever the prefix.
    if match.route is None or upstream is None or upstream.reserved:
        metrics.NO_ROUTE.inc()
        raise NotFound(f"no Trigger serves {host}{target.path}", error_type="NoRoute")
    return Routed(match.route, upstream, host)


class RouteFinder:
    """``find_route`` behind the cache, over the catalog's table of the moment (it swaps
    in a new one when Triggers change)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._routed: dict[tuple[str, str, str], Routed] = {}
        # The table (and its version) self._routed was filled from: a change forgets it.
        self._routed_by: RouteTable | None = None
        self._routed_version = -1

    def find(self, raw_path: str, host: str, method: str) -> Routed:
        table = self._catalog.routes
        if table is not self._routed_by or table.version != self._routed_version:
            self._routed.clear()
            self._routed_by, self._routed_version = table, table.version
        key = (raw_path, host, method)
        routed = self._routed.get(key)
        if routed is None:
            # Refusals raise and are not kept: each counts, and has its own id.
            routed = find_route(table, raw_path, host, method)
            if len(self._routed) >= ROUTED_CACHE_SIZE:
                self._routed.clear()
            self._routed[key] = routed
        return routed


__all__ = ["ROUTED_CACHE_SIZE", "RouteFinder", "Routed", "find_route"]
