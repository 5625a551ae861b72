"""What the operator knows of every Trigger without asking the API server: the route each
HTTP Trigger claims, the key Secret each reads, the Function each calls.

Three lookups, each by its own key, so that a route's rivals, a Secret's users and a
Function's callers are found in O(their number), never by a pass over every Trigger:

- ``routes``: route identity (host, path) -> the claims on it (route ownership);
- ``key_refs``: (namespace, Secret) -> (Trigger, auth) of the Triggers that read it;
- ``callers``: (namespace, Function) -> the Triggers that call it.

Filled once at start-up by a paged LIST of the Triggers, then kept current by the Trigger
watch (``observe`` / ``forget`` from an event handler). Not kopf indexes: kopf makes
every worker at start-up wait until every indexed object is indexed, so with a bound on
its workers (``settings.queueing.worker_limit``, which bounds the operator's memory while
it catches up with 10,000 objects) a start with more Triggers than workers deadlocks
(kopf issue #1243). The start-up LIST gives the same guarantee kopf's indexes give (no
Trigger is judged against a partial picture) without it.

Cost: one entry per Trigger (its claim, its Secret, its Function); observing a Trigger is
O(1) and a lookup O(the group it returns).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hanshu_api import API_VERSION, TRIGGER_PLURAL
from hanshu_api.kube import KubeClient, path_for
from hanshu_api.models import ApiKeyAuth, SpecInvalid, TriggerSpec, parse_trigger_spec
from hanshu_api.route_claims import RouteClaim, RouteKey, TriggerKey
from hanshu_api.versions import FunctionTarget

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")

LIST_PAGE = 500  # Triggers per page of the start-up LIST


class Grouped(Mapping[Key, Iterable[Value]], Generic[Key, Value]):
    """key -> the values of the Triggers filed under it (a read-only mapping).

    Most keys have one Trigger (a route, a Function): such a group is kept as the pair
    itself, and becomes a dictionary at its second member. A dictionary per key was a
    third of the index's memory (232 bytes each, twice per Trigger)."""

    def __init__(self) -> None:
        self._groups: dict[Key, tuple[TriggerKey, Value] | dict[TriggerKey, Value]] = {}

    def __getitem__(self, key: Key) -> Iterable[Value]:
        group = self._groups[key]
        return [group[1]] if isinstance(group, tuple) else list(group.values())

    def __iter__(self) -> Iterator[Key]:
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    def put(self, key: Key, trigger: TriggerKey, value: Value) -> None:
        group = self._groups.get(key)
        if group is None or (isinstance(group, tuple) and group[0] == trigger):
            self._groups[key] = (trigger, value)
        elif isinstance(group, tuple):
            self._groups[key] = {group[0]: group[1], trigger: value}
        else:
            group[trigger] = value

    def drop(self, key: Key, trigger: TriggerKey) -> None:
        group = self._groups.get(key)
        if group is None:
            return
        if isinstance(group, tuple):
            if group[0] == trigger:
                del self._groups[key]
            return
        group.pop(trigger, None)
        if len(group) == 1:
            self._groups[key] = next(iter(group.items()))


@dataclass(frozen=True, slots=True)
class _Filed:
    """What one Trigger is filed under, to unfile it when it changes or goes."""

    claim: RouteClaim | None
    secret: tuple[str, str] | None
    auth: ApiKeyAuth | None
    function: tuple[str, str] | None
    # What the Trigger calls: $LATEST, a version or an alias (versions need it: a version a
    # Trigger names keeps its Deployment). None for an invalid spec.
    target: FunctionTarget | None = None


def _parsed(spec: Mapping[str, Any], namespace: str) -> TriggerSpec | None:
    try:
        return parse_trigger_spec(spec, namespace)
    except SpecInvalid:
        return None


def claim_of(
    namespace: str, name: str, meta: Mapping[str, Any], spec: Mapping[str, Any]
) -> RouteClaim | None:
    """The route an HTTP Trigger claims, or None (not HTTP, or a spec that claims nothing
    because it is invalid)."""
    trigger = _parsed(spec, namespace)
    if trigger is None or trigger.http is None:
        return None
    return RouteClaim.of(namespace, name, meta.get("creationTimestamp"), trigger.http)


class TriggerIndex:
    def __init__(self) -> None:
        self.routes: Grouped[RouteKey, RouteClaim] = Grouped()
        self.key_refs: Grouped[tuple[str, str], tuple[str, ApiKeyAuth]] = Grouped()
        self.callers: Grouped[tuple[str, str], str] = Grouped()
        self._filed: dict[TriggerKey, _Filed] = {}

    def __len__(self) -> int:
        return len(self._filed)

    def claim(self, namespace: str, name: str) -> RouteClaim | None:
        """The route claim this Trigger was last filed with."""
        filed = self._filed.get((namespace, name))
        return filed.claim if filed is not None else None

    def target(self, namespace: str, name: str) -> FunctionTarget | None:
        """What this Trigger was last filed as calling."""
        filed = self._filed.get((namespace, name))
        return filed.target if filed is not None else None

    def targets(self, namespace: str, function: str) -> list[tuple[str, FunctionTarget]]:
        """(Trigger name, what it calls) of the Triggers that call ``function``."""
        found = []
        for name in self.callers.get((namespace, function), ()):
            target = self.target(namespace, name)
            if target is not None:
                found.append((name, target))
        return found

    def observe(
        self, namespace: str, name: str, meta: Mapping[str, Any], spec: Mapping[str, Any]
    ) -> None:
        """File the Trigger as it is now (and no longer as it was)."""
        trigger = _parsed(spec, namespace)
        claim = None
        if trigger is not None and trigger.http is not None:
            claim = RouteClaim.of(namespace, name, meta.get("creationTimestamp"), trigger.http)
        # An HTTP route's API keys, or the token a bucket's notifications carry: both are
        # published as salted verifiers, so the gateway never holds either.
        auth = trigger.auth if trigger is not None else None
        function = (spec.get("functionRef") or {}).get("name")
        filed = _Filed(
            claim,
            (namespace, auth.secret_name) if auth is not None else None,
            auth,
            (namespace, function) if isinstance(function, str) else None,
            trigger.target if trigger is not None else None,
        )
        key = (namespace, name)
        if self._filed.get(key) == filed:
            return  # a status write or a fire: nothing it is filed under changed
        self.forget(namespace, name)
        self._filed[key] = filed
        if filed.claim is not None:
            self.routes.put(filed.claim.route, key, filed.claim)
        if filed.secret is not None and filed.auth is not None:
            self.key_refs.put(filed.secret, key, (name, filed.auth))
        if filed.function is not None:
            self.callers.put(filed.function, key, name)

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        filed = self._filed.pop(key, None)
        if filed is None:
            return
        if filed.claim is not None:
            self.routes.drop(filed.claim.route, key)
        if filed.secret is not None:
            self.key_refs.drop(filed.secret, key)
        if filed.function is not None:
            self.callers.drop(filed.function, key)

    async def load(self, kube: KubeClient, namespaces: Iterable[str | None]) -> int:
        """File every Trigger in ``namespaces`` (None: the whole cluster), a page at a
        time; returns how many."""
        count = 0
        for namespace in namespaces:
            path = path_for(API_VERSION, TRIGGER_PLURAL, namespace)
            params = {"limit": str(LIST_PAGE)}
            while True:
                page = await kube.request("GET", path, params=params) or {}
                for item in page.get("items") or []:
                    meta = item.get("metadata") or {}
                    spec = item.get("spec") or {}
                    self.observe(str(meta.get("namespace")), str(meta.get("name")), meta, spec)
                    count += 1
                token = (page.get("metadata") or {}).get("continue")
                if not token:
                    break
                params = {"limit": str(LIST_PAGE), "continue": token}
        return count
