"""Route ownership: a public route belongs to the oldest Trigger that claims it
(``hanshu_api.route_claims``); every later claimant reports ``Served=False``,
``RouteConflict``, naming the owner, and takes over when the owner goes.

Every HTTP Trigger's claim lives in a kopf index (memory, filled from the watch kopf
already runs, across every namespace the operator watches), so judging a Trigger costs
a dictionary lookup, not a LIST of the cluster. When a claim appears, moves or goes, only
the claimants of the routes it left and entered are re-judged: one GET each, and a status
write only when a verdict changed. A timer re-checking every HTTP Trigger would instead
cost 1,000 Triggers a GET each per period, mostly for nothing, and put a finalizer on each
(kopf timers require one).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import kopf
from hanshu_api import GROUP, TRIGGER_PLURAL, VERSION
from hanshu_api.route_claims import RouteClaim, RouteKey, TriggerKey

from .state import operator_state
from .trigger_status import (
    ROUTE_INDEX,
    RouteIndex,
    claim_of,
    route_index,
    with_retries,
    write_trigger_status,
)


@kopf.index(GROUP, VERSION, TRIGGER_PLURAL, id=ROUTE_INDEX)
def trigger_route_claims(
    namespace: str | None, name: str, meta: kopf.Meta, spec: kopf.Spec, **_: Any
) -> dict[RouteKey, RouteClaim]:
    """Route identity (host, path) -> the claims on it."""
    claim = claim_of(namespace, name, meta, spec) if namespace else None
    # An empty mapping (not None) drops a Trigger that no longer claims a route.
    return {} if claim is None else {claim.route: claim}


def rivals_to_recheck(
    key: TriggerKey, claims: Iterable[RouteClaim | None], routes: RouteIndex
) -> list[RouteClaim]:
    """The other claimants of every route these claims are on, oldest first."""
    touched = {claim.route for claim in claims if claim is not None}
    rivals = {
        rival.key: rival for route in touched for rival in routes.get(route, ()) if rival.key != key
    }
    return sorted(rivals.values(), key=lambda rival: rival.age_order)


@kopf.on.event(GROUP, VERSION, TRIGGER_PLURAL)
async def recheck_route_rivals(
    type: str | None,
    namespace: str | None,
    name: str,
    meta: kopf.Meta,
    spec: kopf.Spec,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """A claim appeared, moved or went: re-judge the other claimants of its old and new
    route (the Trigger itself is judged by its own reconcile). Most events (status
    writes, fires) leave the claim as it was and cost one comparison."""
    if namespace is None:
        return
    state = operator_state(memo)
    key = (namespace, name)
    claim = None if type == "DELETED" else claim_of(namespace, name, meta, spec)
    before = state.route_claims.pop(key, None)
    if claim is not None:
        state.route_claims[key] = claim
    if claim == before:
        return
    routes = route_index(kwargs)
    if type is None and before is None:
        return  # first sight at start-up: every Trigger's resume judges it with the full index
    for rival in rivals_to_recheck(key, (before, claim), routes):
        await with_retries(
            f"re-judging the route of Trigger {rival.namespace}/{rival.name}",
            functools.partial(write_trigger_status, state, rival.namespace, rival.name, routes),
        )
