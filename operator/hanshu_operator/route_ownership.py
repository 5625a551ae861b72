"""Route ownership: a public route belongs to the oldest Trigger that claims it
(``hanshu_api.route_claims``); every later claimant reports ``Served=False``,
``RouteConflict``, naming the owner, and takes over when the owner goes.

Every HTTP Trigger's claim is filed in memory (``state.triggers.routes``, kept by the
Trigger watch kopf already runs, across every namespace the operator watches), so judging
a Trigger costs a dictionary lookup, not a LIST of the cluster. When a claim appears,
moves or goes, only the claimants of the routes it left and entered are re-judged: one
GET each, and a status write only when a verdict changed. A timer re-checking every HTTP
Trigger would instead cost 1,000 Triggers a GET each per period, mostly for nothing, and
put a finalizer on each (kopf timers require one).

Cost: an event compares the Trigger's claim with the one it was filed with (O(1)); a
claim that moved re-judges the claimants of two routes, never every Trigger.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import kopf
from hanshu_api import GROUP, TRIGGER_PLURAL, VERSION
from hanshu_api.route_claims import RouteClaim, TriggerKey

from .function_versions import resync_versions_called
from .state import OperatorState, operator_state
from .trigger_status import RouteIndex, with_retries, write_trigger_status


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
async def file_trigger(
    type: str | None,
    namespace: str | None,
    name: str,
    meta: kopf.Meta,
    spec: kopf.Spec,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Keep ``state.triggers`` current, and re-judge the rivals of a claim that appeared,
    moved or went (the Trigger itself is judged by its own reconcile). Most events
    (status writes, fires) leave everything as it was and cost one comparison."""
    if namespace is None:
        return
    state = operator_state(memo)
    before = state.triggers.claim(namespace, name)
    target_before = state.triggers.target(namespace, name)
    if type == "DELETED":
        state.triggers.forget(namespace, name)
    else:
        state.triggers.observe(namespace, name, meta, spec)
    claim = state.triggers.claim(namespace, name)
    await resync_versions_called(
        state, namespace, target_before, state.triggers.target(namespace, name)
    )
    if claim == before:
        return
    if type is None and before is None:
        return  # first sight at start-up: every Trigger's resume judges it with the full index
    await recheck_route_rivals(state, (namespace, name), (before, claim))


async def recheck_route_rivals(
    state: OperatorState, key: TriggerKey, claims: tuple[RouteClaim | None, RouteClaim | None]
) -> None:
    """Re-judge the other claimants of the routes ``claims`` are on (``bounded``)."""
    routes = state.triggers.routes
    async with state.reconcile_slots:
        for rival in rivals_to_recheck(key, claims, routes):
            await with_retries(
                f"re-judging the route of Trigger {rival.namespace}/{rival.name}",
                functools.partial(write_trigger_status, state, rival.namespace, rival.name, routes),
            )
