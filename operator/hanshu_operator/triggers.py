"""kopf handlers for Triggers: binding to the Function, honest status (route ownership and
API keys included), and a schedule Trigger published to the dispatchers, which fire it
(``schedule_catalog``).

Cost: a Trigger's reconcile is a constant number of API calls (its Function, its keys,
its status). A Function's deletion re-judges only its own Triggers, found in an index
(``state.triggers.callers``), not by listing every Trigger of the namespace: deleting n
Functions costs O(n + their Triggers), not n LISTs of everything. A schedule Trigger costs
the operator one KV put per reconcile and nothing between fires.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf
from hanshu_api import API_VERSION, FUNCTION_PLURAL, GROUP, TRIGGER_PLURAL, VERSION
from hanshu_api.kube import path_for
from hanshu_api.models import SpecInvalid, parse_trigger_spec
from hanshu_api.schedules import ScheduleEntry
from hanshu_api.versions import FunctionTarget

from .api_key_publisher import sync_api_keys, unpublish
from .bounded import bounded
from .conditions import FALSE, TRUE, Condition
from .metrics import instrumented
from .schedule_catalog import schedule_catalog
from .state import operator_state
from .trigger_status import (
    EVENT_RETRY_DELAYS,
    trigger_delivery,
    trigger_url,
    write_trigger_status,
)

__all__ = ["binding", "reconcile_trigger", "trigger_delivery", "trigger_url"]

logger = logging.getLogger("hanshu.operator")


@kopf.on.resume(GROUP, VERSION, TRIGGER_PLURAL)
@kopf.on.create(GROUP, VERSION, TRIGGER_PLURAL)
@kopf.on.update(GROUP, VERSION, TRIGGER_PLURAL)
@bounded
@instrumented("Trigger")
async def reconcile_trigger(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    name: str,
    namespace: str | None,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    assert namespace is not None  # Triggers are namespaced
    state = operator_state(memo)
    routes = state.triggers.routes
    generation = meta.get("generation")
    schedules = schedule_catalog(memo)
    try:
        trigger = parse_trigger_spec(spec, namespace)
    except SpecInvalid as error:
        async with state.api_keys_lock(namespace, name):
            await unpublish(state, namespace, name)  # an invalid Trigger serves nothing
        await schedules.withdraw(namespace, name)  # nor fires
        await write_trigger_status(state, namespace, name, routes, generation=generation)
        kopf.warn(body, reason="InvalidSpec", message=str(error))
        raise kopf.PermanentError(f"the Trigger spec is invalid: {error}") from None
    function = await state.kube.get(
        path_for(API_VERSION, FUNCTION_PLURAL, namespace, trigger.function_name)
    )
    bound = binding(trigger.target, namespace, function)
    _served, fields = trigger_delivery(
        state.config, trigger, state.clock.now(), where=(namespace, name)
    )
    async with state.api_keys_lock(namespace, name):
        keys = await sync_api_keys(state, namespace, name, trigger)
        written = await write_trigger_status(
            state,
            namespace,
            name,
            routes,
            bound=bound,
            keys=keys,
            generation=generation,
            type=trigger.source_type,
            **fields,
        )
        if written is None:
            await unpublish(state, namespace, name)  # deleted meanwhile: publish nothing
    schedule = ScheduleEntry.of_trigger(namespace, name, trigger)
    if written is None or schedule is None:
        await schedules.withdraw(namespace, name)  # gone, or no longer a schedule
    else:
        await schedules.publish(schedule)  # the dispatchers fire it from now on
    if bound.status != TRUE:
        kopf.warn(body, reason=bound.reason, message=bound.message)
        raise kopf.TemporaryError(bound.message, delay=state.config.retry_delay_seconds)


def binding(
    target: FunctionTarget, namespace: str, function: Mapping[str, Any] | None
) -> Condition:
    """FunctionBound: the Function exists, and so does the alias the Trigger calls (a
    version the Trigger names is judged by the Function's status: docs/versions.md)."""
    function_name = target.function
    if function is None:
        return Condition(
            "FunctionBound",
            FALSE,
            "FunctionNotFound",
            f"the Function '{function_name}' does not exist in namespace '{namespace}'; "
            "create it (the Trigger binds as soon as it exists)",
        )
    if target.alias is not None:
        raw = (function.get("spec") or {}).get("aliases") or []
        names = sorted(str(a.get("name")) for a in raw if isinstance(a, Mapping))
        if target.alias not in names:
            return Condition(
                "FunctionBound",
                FALSE,
                "AliasNotFound",
                f"the Function '{function_name}' has no alias '{target.alias}' (aliases: "
                f"{', '.join(names) or 'none'}); add it (hanshu alias set {function_name} "
                f"{target.alias} --version N) and the Trigger binds",
            )
    return Condition("FunctionBound", TRUE, "Bound", f"calls Function '{target}'")


@kopf.on.event(GROUP, VERSION, TRIGGER_PLURAL)
async def withdraw_deleted_schedule(
    type: str | None, name: str, namespace: str | None, spec: kopf.Spec, memo: kopf.Memo, **_: Any
) -> None:
    """A deleted schedule Trigger stops firing: its catalog entry goes. kopf never retries
    an event handler: tried a few times here (and at the operator's next start)."""
    if type != "DELETED" or namespace is None or spec.get("schedule") is None:
        return
    for delay in (*EVENT_RETRY_DELAYS, None):
        try:
            await schedule_catalog(memo).withdraw(namespace, name)
            return
        except kopf.TemporaryError as error:
            if delay is None:
                logger.error("schedule %s/%s still fires: %s", namespace, name, error)
                return
            await asyncio.sleep(delay)


@kopf.on.event(GROUP, VERSION, FUNCTION_PLURAL)
async def unbind_triggers_of_deleted_function(
    type: str,
    name: str,
    namespace: str | None,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """A deleted Function leaves its Triggers unbound: say so on each of them. And the
    operator forgets what it kept for the Function."""
    if type != "DELETED" or namespace is None:
        return
    state = operator_state(memo)
    state.forget_function((namespace, name))
    message = f"the Function '{name}' was deleted; the Trigger binds again when it is recreated"
    bound = Condition("FunctionBound", FALSE, "FunctionNotFound", message)
    callers = sorted(set(state.triggers.callers.get((namespace, name), ())))
    async with state.reconcile_slots:  # (``bounded``)
        for trigger in callers:
            await write_trigger_status(
                state, namespace, trigger, state.triggers.routes, bound=bound
            )
