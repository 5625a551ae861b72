"""What the gateway knows: routes, each Function's limits and replicas, API keys.

Sources (Kubernetes watches, or manifest files in the developer mode) feed it; the request
path only reads it.

Cost: memory grows with the number of Functions (an entry, a pool, meters each) and of
Triggers (the spec and a claim each). A Trigger's event re-judges only the claims on the
route it left and entered (``RouteBook``), and a full list is judged in one sorted pass:
nothing here grows with the square of either number.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hanshu_api.api_keys import KeyVerifiers
from hanshu_api.conditions import ReplicaFault
from hanshu_api.loop_lag import Slices
from hanshu_api.models import AsyncPolicy, FunctionSpec, RateLimit, TriggerSpec
from hanshu_api.platform import Endpoint, FunctionKey
from hanshu_api.route_claims import RouteBook, RouteClaim, TriggerKey
from hanshu_api.versions import AliasRouting, version_label

from .metrics import QUEUE_LIMIT, FunctionMeters
from .pool import EndpointPool
from .protect import TokenBucket
from .routes import Route, RouteTable
from .stats import FunctionStats
from .version_routing import AliasChoice, AliasKey

# (namespace, trigger) -> the verifiers of that Trigger's API keys, None when unknown.
# Synchronous: the sources keep them in memory, so checking a key costs no I/O.
KeyLookup = Callable[[str, str], KeyVerifiers | None]
# (the claim not served, the older claim that owns its route)
Conflict = tuple[RouteClaim, RouteClaim]


@dataclass(frozen=True, slots=True)
class KnownTrigger:
    namespace: str
    name: str
    created: str | None  # creationTimestamp: the oldest Trigger claiming a route owns it
    spec: TriggerSpec


@dataclass(frozen=True, slots=True)
class _Built:
    """What a full list of Triggers makes, before it takes over."""

    http: dict[TriggerKey, KnownTrigger]
    claims: RouteBook
    routes: RouteTable
    object_triggers: dict[TriggerKey, KnownTrigger]


def _claim(trigger: KnownTrigger) -> RouteClaim:
    assert trigger.spec.http is not None
    return RouteClaim.of(trigger.namespace, trigger.name, trigger.created, trigger.spec.http)


def _route(trigger: KnownTrigger) -> Route:
    assert trigger.spec.http is not None
    target = trigger.spec.target_ref  # functionRef's version or alias; None: $LATEST
    return Route(
        trigger.namespace,
        trigger.name,
        trigger.spec.function_name,
        trigger.spec.http,
        target.version if target is not None else None,
        target.alias if target is not None else None,
    )


@dataclass
class FunctionEntry:
    key: FunctionKey
    concurrency: int
    timeout_seconds: float
    memory_gb: float
    pool: EndpointPool
    stats: FunctionStats
    meters: FunctionMeters
    # What async calls to it are stored with.
    async_policy: AsyncPolicy = field(default_factory=AsyncPolicy)
    # The Function it runs (key[1] for $LATEST; a published version's key names its
    # Function here), and which version: None for $LATEST.
    function: str = ""
    version: int | None = None


class Catalog:
    def __init__(
        self,
        queue_limit: int,
        key_verifiers: KeyLookup,
        default_resources: Mapping[str, Any] | None = None,
    ) -> None:
        self.queue_limit = queue_limit
        QUEUE_LIMIT.set(queue_limit)  # beside hanshu_gateway_queued: how near a refusal
        self.key_verifiers = key_verifiers
        # What a Function without its own resources gets (the chart's functionDefaults):
        # metering bills the memory the pod really has.
        self.default_resources: Mapping[str, Any] = default_resources or {}
        self.routes = RouteTable()
        self.functions: dict[FunctionKey, FunctionEntry] = {}
        self._buckets: dict[tuple[str, str], tuple[RateLimit, TokenBucket]] = {}
        self._pending_endpoints: dict[FunctionKey, Sequence[Endpoint]] = {}
        # The HTTP Triggers (served or not) and their claims, judged route by route.
        self._http: dict[TriggerKey, KnownTrigger] = {}
        self._claims = RouteBook()
        # Triggers whose bucket sends notifications to /_hanshu/events/{namespace}/{name}.
        self.object_triggers: dict[tuple[str, str], KnownTrigger] = {}
        # Each alias's effective routing, worked out when its Function changes: a request
        # through an alias costs this one lookup and a draw.
        self.aliases: dict[AliasKey, AliasChoice] = {}
        self._aliases_of: dict[FunctionKey, set[str]] = {}

    def set_aliases(self, key: FunctionKey, routings: Mapping[str, AliasRouting]) -> None:
        """A Function's aliases as they route now (``effective_routing``); {} when it is
        gone or has none."""
        namespace, function = key
        for gone in self._aliases_of.pop(key, set()) - set(routings):
            self.aliases.pop((namespace, function, gone), None)
        for name, routing in routings.items():
            self.aliases[(namespace, function, name)] = AliasChoice.of(namespace, function, routing)
        if routings:
            self._aliases_of[key] = set(routings)

    def set_function(
        self,
        key: FunctionKey,
        spec: FunctionSpec | None,
        fault: ReplicaFault | None = None,
        version_of: tuple[str, int] | None = None,
    ) -> None:
        """A Function's spec (None: gone or invalid), and why its replicas cannot start when
        its status says so (cold requests are then refused at once). A published version
        is an entry of its own under its version_key: ``version_of`` names its Function
        and number (its spec is the version's template)."""
        if spec is None:
            gone = self.functions.pop(key, None)
            if gone is not None:
                gone.meters.forget()
            return
        entry = self.functions.get(key)
        if entry is None:
            pool = EndpointPool(spec.concurrency, self.queue_limit)
            stats = FunctionStats()
            function, version = version_of or (key[1], None)
            entry = FunctionEntry(
                key,
                spec.concurrency,
                spec.timeout_seconds,
                self._memory_gb(spec),
                pool,
                stats,
                FunctionMeters(key[0], function, stats, version_label(version)),
                function=function,
                version=version,
            )
            entry.async_policy = spec.async_policy
            self.functions[key] = entry
            if key in self._pending_endpoints:
                pool.set_ready(self._pending_endpoints.pop(key))
        else:
            entry.concurrency = entry.pool.concurrency = spec.concurrency
            entry.timeout_seconds = spec.timeout_seconds
            entry.memory_gb = self._memory_gb(spec)
            entry.async_policy = spec.async_policy
        entry.pool.set_fault(fault)

    def _memory_gb(self, spec: FunctionSpec) -> float:
        return spec.effective_memory_mb(self.default_resources) / 1024

    def set_endpoints(self, key: FunctionKey, endpoints: Sequence[Endpoint]) -> None:
        entry = self.functions.get(key)
        if entry is None:  # endpoints can be seen before the Function
            self._pending_endpoints[key] = endpoints
        else:
            entry.pool.set_ready(endpoints)

    def set_triggers(self, triggers: Iterable[KnownTrigger]) -> list[Conflict]:
        """Replace every Trigger at once (a full list): the routes their oldest claimants
        own are served, judged in one pass. Returns the claims refused."""
        building = self._building(list(triggers))
        while True:
            try:
                next(building)
            except StopIteration as built:
                return self._install(built.value)

    async def load_triggers(self, triggers: list[KnownTrigger]) -> list[Conflict]:
        """``set_triggers`` in slices that give the event loop back: judging 10,000
        routes is about 150 ms of work. The new routes are built beside the old ones and
        take over in one step: no request meets a half-built table or a wrong owner."""
        slices = Slices()
        building = self._building(triggers)
        while True:
            try:
                next(building)
            except StopIteration as built:
                return self._install(built.value)
            await slices.pause()

    def _building(self, triggers: list[KnownTrigger]) -> Generator[None, None, _Built]:
        """Build the claims and routes of ``triggers``, yielding after each piece of work
        so that a caller may pause between them."""
        http: dict[TriggerKey, KnownTrigger] = {}
        claims: list[RouteClaim] = []
        for trigger in triggers:
            if trigger.spec.http is not None:
                http[(trigger.namespace, trigger.name)] = trigger
                claims.append(_claim(trigger))
                yield
        book = RouteBook()
        book.replace_all(claims)
        yield
        routes: list[Route] = []
        for key, trigger in http.items():
            if book.owner_of(key) is None:
                routes.append(_route(trigger))
                yield
        objects = {(t.namespace, t.name): t for t in triggers if t.spec.object_storage is not None}
        return _Built(http, book, RouteTable(routes), objects)

    def _install(self, built: _Built) -> list[Conflict]:
        self._http, self._claims, self.routes = built.http, built.claims, built.routes
        self.object_triggers = built.object_triggers
        for key in [key for key in self._buckets if self.routes.of_trigger(*key) is None]:
            del self._buckets[key]
        return self._claims.conflicts()

    def put_trigger(self, trigger: KnownTrigger) -> list[Conflict]:
        """One Trigger added or changed: only the claims on its old and new route are
        judged again. Returns the claims this change refused (each once)."""
        key = (trigger.namespace, trigger.name)
        if trigger.spec.object_storage is not None:
            self.object_triggers[key] = trigger
        else:
            self.object_triggers.pop(key, None)
        if trigger.spec.http is None:  # no route (any more): its claim goes
            if self._http.pop(key, None) is None:
                return []
            return self._apply(self._claims.remove(key))
        self._http[key] = trigger
        return self._apply(self._claims.put(_claim(trigger)))

    def remove_trigger(self, key: TriggerKey) -> list[Conflict]:
        """A Trigger gone: the next oldest claimant of its route takes over."""
        self.object_triggers.pop(key, None)
        self._http.pop(key, None)
        return self._apply(self._claims.remove(key))

    def _apply(self, changed: set[TriggerKey]) -> list[Conflict]:
        refused: list[Conflict] = []
        for key in changed:
            trigger = self._http.get(key)
            owner = self._claims.owner_of(key)
            if trigger is None or owner is not None:
                self.routes.remove(*key)
                self._buckets.pop(key, None)
                if trigger is not None and owner is not None:
                    refused.append((_claim(trigger), owner))
            else:
                self.routes.add(_route(trigger))
        return refused

    def known_triggers(self) -> list[KnownTrigger]:
        """The Triggers the gateway serves or refuses: HTTP routes and bucket intakes."""
        return list({**self.object_triggers, **self._http}.values())

    def conflicts(self) -> list[Conflict]:
        return self._claims.conflicts()

    def route_of_trigger(self, namespace: str, trigger: str) -> Route | None:
        """The route an HTTP Trigger owns now (an async status is read through it)."""
        return self.routes.of_trigger(namespace, trigger)

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
        """The stats the autoscaler needs: of every Function with requests (waiting, in
        flight or arrived since the last report) or with replicas (ready or starting).
        A Function at zero with no request has nothing to decide: leaving the thousands
        of those out keeps a report (and the work of making and reading it, every second)
        the size of what is running, not of what is deployed."""
        return [
            (key, entry.stats)
            for key, entry in self.functions.items()
            if entry.stats.in_flight
            or entry.stats.arrivals
            or entry.stats.completed
            or entry.pool.ready
            or entry.pool.starting
        ]
