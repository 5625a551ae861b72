"""Who owns a public route: the oldest Trigger that claims it.

Two Triggers claim the same route when they share the host and the path prefix and their
methods overlap (no methods means every method). The oldest (creationTimestamp, then
namespace/name) owns it; every later claimant loses to the owner it collides with. The
operator reports the losers (``Served=False``, ``RouteConflict``) and the gateway serves
only owners, so one team cannot take over another team's route, in any namespace.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from .models import HttpRoute

TriggerKey = tuple[str, str]  # (namespace, name)
RouteKey = tuple[str, tuple[str, ...]]  # (host, decoded path segments)
_NEWEST = "9999"  # no creationTimestamp yet (sorts after every real RFC 3339 time)


def prefix_segments(path: str) -> tuple[str, ...]:
    """A Trigger's path as the gateway matches it: decoded segments, '/' being none.
    Written decoded ('/商店') or encoded ('/%E5%95%86%E5%BA%97', '/sh%6Fp'), it is the
    same route; an encoded slash stays inside its segment."""
    stem = path.rstrip("/")
    if not stem:
        return ()
    return tuple(
        unquote_to_bytes(segment).decode("utf-8", "replace") for segment in stem[1:].split("/")
    )


def route_identity(host: str, path: str) -> RouteKey:
    """Host without port, lower-cased; the path prefix as the gateway routes on it."""
    bare_host = host.lower().split(":", 1)[0]
    return bare_host, prefix_segments(path)


@dataclass(frozen=True, slots=True)
class RouteClaim:
    namespace: str
    name: str
    created: str  # RFC 3339, as the API server writes it ("2026-11-27T20:58:42Z")
    host: str
    path: str
    methods: tuple[str, ...] = ()

    @classmethod
    def of(cls, namespace: str, name: str, created: str | None, http: HttpRoute) -> RouteClaim:
        return cls(namespace, name, created or _NEWEST, http.host, http.path, http.methods)

    @property
    def key(self) -> TriggerKey:
        return (self.namespace, self.name)

    @property
    def route(self) -> RouteKey:
        return route_identity(self.host, self.path)

    @property
    def age_order(self) -> tuple[str, str, str]:
        return (self.created, self.namespace, self.name)

    def overlaps(self, other: RouteClaim) -> bool:
        if self.route != other.route:
            return False
        if not self.methods or not other.methods:
            return True
        return bool(_with_head(self.methods) & _with_head(other.methods))

    def describe(self) -> str:
        methods = ",".join(self.methods) or "every method"
        host = self.host or "any host"
        return f"{host}{self.path} ({methods})"


def _with_head(methods: tuple[str, ...]) -> set[str]:
    # The gateway answers HEAD on a GET route, so GET and HEAD collide.
    found = set(methods)
    return found | {"HEAD"} if "GET" in found else found


def route_owners(claims: Iterable[RouteClaim]) -> dict[TriggerKey, RouteClaim | None]:
    """For every claim: None when it owns its route, else the older claim that does."""
    verdicts: dict[TriggerKey, RouteClaim | None] = {}
    accepted: dict[RouteKey, list[RouteClaim]] = {}
    for claim in sorted(claims, key=lambda c: c.age_order):
        owners = accepted.setdefault(claim.route, [])
        owner = next((o for o in owners if o.overlaps(claim)), None)
        verdicts[claim.key] = owner
        if owner is None:
            owners.append(claim)
    return verdicts


def conflict_message(loser: RouteClaim, owner: RouteClaim) -> str:
    return (
        f"the route {loser.describe()} already belongs to Trigger "
        f"{owner.namespace}/{owner.name} (created {owner.created}); the oldest Trigger "
        "owns a route. Choose another host or path, or delete the other Trigger; this "
        "one takes over when it is gone"
    )
