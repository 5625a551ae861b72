"""Who owns a public route: the oldest Trigger that claims it.

Two Triggers claim the same route when they share the host and the path prefix and their
methods overlap (no methods means every method). The oldest (creationTimestamp, then
namespace/name) owns it; every later claimant loses to the owner it collides with. The
operator reports the losers (``Served=False``, ``RouteConflict``) and the gateway serves
only owners, so one team cannot take over another team's route, in any namespace.

Cost: a claim's route identity is worked out once, when the claim is made. Judging n claims
sorts them once and compares each only with the owners of its own route, so it grows with
n log n (plus the square of the claimants of one route, which are few); ``RouteBook`` keeps
the claims grouped by route so that one Trigger's change re-judges only its own routes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
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
    # The route identity, worked out once: judging compares it for every pair of claims.
    route: RouteKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "route", route_identity(self.host, self.path))

    @classmethod
    def of(cls, namespace: str, name: str, created: str | None, http: HttpRoute) -> RouteClaim:
        return cls(namespace, name, created or _NEWEST, http.host, http.path, http.methods)

    @property
    def key(self) -> TriggerKey:
        return (self.namespace, self.name)

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


@dataclass
class RouteBook:
    """Every claim, grouped by route identity, with each claim's verdict kept.

    ``put`` and ``remove`` re-judge only the routes the claim left and entered, and say
    which claims' verdicts changed: a Trigger event costs the claimants of its own routes,
    never a pass over every claim. Judging is ``route_owners``'s, route by route.
    """

    _claims: dict[TriggerKey, RouteClaim] = field(default_factory=dict)
    _by_route: dict[RouteKey, dict[TriggerKey, RouteClaim]] = field(default_factory=dict)
    _verdicts: dict[TriggerKey, RouteClaim | None] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._claims)

    def __contains__(self, key: object) -> bool:
        return key in self._claims

    def get(self, key: TriggerKey) -> RouteClaim | None:
        return self._claims.get(key)

    def owner_of(self, key: TriggerKey) -> RouteClaim | None:
        """None when the claim owns its route (or is unknown), else the claim that does."""
        return self._verdicts.get(key)

    def owners(self) -> list[RouteClaim]:
        """The claims that own their routes."""
        return [c for key, c in self._claims.items() if self._verdicts.get(key) is None]

    def conflicts(self) -> list[tuple[RouteClaim, RouteClaim]]:
        """(refused claim, the claim that owns its route), for every refused claim."""
        return [
            (self._claims[key], owner) for key, owner in self._verdicts.items() if owner is not None
        ]

    def put(self, claim: RouteClaim) -> set[TriggerKey]:
        """Add or replace a claim; the keys whose verdict changed (the claim's own
        included when it is new or moved)."""
        before = self._claims.get(claim.key)
        if before == claim:
            return set()
        touched = {claim.route}
        if before is not None:
            touched.add(before.route)
            self._by_route[before.route].pop(claim.key, None)
        self._claims[claim.key] = claim
        self._by_route.setdefault(claim.route, {})[claim.key] = claim
        changed = self._rejudge(touched)
        return changed | {claim.key}

    def remove(self, key: TriggerKey) -> set[TriggerKey]:
        """Forget a claim; the keys whose verdict changed (the removed one included)."""
        before = self._claims.pop(key, None)
        if before is None:
            return set()
        self._verdicts.pop(key, None)
        self._by_route[before.route].pop(key, None)
        return self._rejudge({before.route}) | {key}

    def replace_all(self, claims: Iterable[RouteClaim]) -> None:
        """Start over from a full list (a re-list): one pass, grouped by route."""
        self._claims = {claim.key: claim for claim in claims}
        self._by_route = {}
        for claim in self._claims.values():
            self._by_route.setdefault(claim.route, {})[claim.key] = claim
        self._verdicts = route_owners(self._claims.values())

    def _rejudge(self, routes: set[RouteKey]) -> set[TriggerKey]:
        changed: set[TriggerKey] = set()
        for route in routes:
            claimants = self._by_route.get(route)
            if not claimants:
                self._by_route.pop(route, None)
                continue
            for key, owner in route_owners(claimants.values()).items():
                if key not in self._verdicts or self._verdicts[key] != owner:
                    changed.add(key)
                self._verdicts[key] = owner
        return changed


def conflict_message(loser: RouteClaim, owner: RouteClaim) -> str:
    return (
        f"the route {loser.describe()} already belongs to Trigger "
        f"{owner.namespace}/{owner.name} (created {owner.created}); the oldest Trigger "
        "owns a route. Choose another host or path, or delete the other Trigger; this "
        "one takes over when it is gone"
    )
