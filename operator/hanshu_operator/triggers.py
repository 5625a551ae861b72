"""kopf handlers for Triggers: binding to the Function, honest status (route ownership and
API keys included), and the daemon that fires schedules through the gateway.

Cost: a Trigger's reconcile is a constant number of API calls (its Function, its keys,
its status). A Function's deletion re-judges only its own Triggers, found in an index
(``state.triggers.callers``), not by listing every Trigger of the namespace: deleting n
Functions costs O(n + their Triggers), not n LISTs of everything. A schedule Trigger has
a daemon (a task) that sleeps until its next fire and looks at its spec every
EDIT_LOOK_SECONDS.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import aiohttp
import kopf
from hanshu_api import API_VERSION, FUNCTION_PLURAL, GROUP, TRIGGER_PLURAL, VERSION
from hanshu_api.gateway_client import InternalGateway
from hanshu_api.kube import path_for
from hanshu_api.models import Schedule, SpecInvalid, parse_trigger_spec

from .api_key_publisher import sync_api_keys, unpublish
from .bounded import bounded
from .conditions import FALSE, TRUE, Condition, rfc3339
from .metrics import instrumented
from .scheduler import FireRecord, follow_schedule, run_schedule, schedule_fire
from .state import operator_state
from .trigger_status import trigger_delivery, trigger_url, write_trigger_status

__all__ = ["reconcile_trigger", "trigger_delivery", "trigger_url"]

# How often the schedule daemon looks at kopf's live spec for an edit.
EDIT_LOOK_SECONDS = 2.0


def _is_schedule(spec: kopf.Spec, **_: Any) -> bool:
    return spec.get("schedule") is not None


def _schedule_plan(spec: kopf.Spec, namespace: str) -> tuple[str, Schedule] | None:
    """What the daemon fires, and when: (Function, schedule), or None while the spec is
    invalid (the reconcile says why) or no longer a schedule."""
    try:
        trigger = parse_trigger_spec(spec, namespace)
    except SpecInvalid:
        return None
    if trigger.schedule is None:
        return None
    return trigger.function_name, trigger.schedule


@kopf.daemon(GROUP, VERSION, TRIGGER_PLURAL, when=_is_schedule, cancellation_timeout=5)
async def fire_schedule(
    body: kopf.Body,
    spec: kopf.Spec,
    name: str,
    namespace: str | None,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    """One daemon per schedule Trigger: fires through the gateway, records every outcome.
    ``spec`` is kopf's live view: an edited cron, time zone, payload or Function stops
    the old schedule and starts the new one within EDIT_LOOK_SECONDS. The time comes
    from the operator's clock (``state.clock``)."""
    assert namespace is not None
    state = operator_state(memo)
    if not state.config.gateway_internal_url:
        return  # the Served condition already says why nothing fires
    status_path = path_for(API_VERSION, TRIGGER_PLURAL, namespace, name, "status")

    async def record(fire: FireRecord) -> None:
        status: dict[str, Any] = {"nextFireTime": rfc3339(fire.next_fire)}
        if fire.last_fire is not None:
            status["lastFireTime"] = rfc3339(fire.last_fire)
            status["lastFireOutcome"] = fire.outcome
            if not fire.delivered:
                kopf.warn(
                    body,
                    reason="FireFailed",
                    message=f"the fire at {status['lastFireTime']} was not delivered: "
                    f"{fire.outcome}",
                )
        await state.kube.merge_patch(status_path, {"status": status})

    async with aiohttp.ClientSession() as session:
        gateway = InternalGateway(
            session, state.config.gateway_internal_url, state.config.internal_token
        )

        async def run(plan: tuple[str, Schedule], stop: asyncio.Event) -> None:
            function, schedule = plan
            fire = schedule_fire(gateway, namespace, function, time_limit=900)
            clock = state.clock
            await run_schedule(
                name, schedule, fire, record, stop, now=clock.now, sleep_until=clock.sleep_until
            )

        await follow_schedule(
            functools.partial(_schedule_plan, spec, namespace),
            run,
            lambda: bool(stopped),
            functools.partial(stopped.wait, EDIT_LOOK_SECONDS),
        )


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
    try:
        trigger = parse_trigger_spec(spec, namespace)
    except SpecInvalid as error:
        async with state.api_keys_lock(namespace, name):
            await unpublish(state, namespace, name)  # an invalid Trigger serves nothing
        await write_trigger_status(state, namespace, name, routes, generation=generation)
        kopf.warn(body, reason="InvalidSpec", message=str(error))
        raise kopf.PermanentError(f"the Trigger spec is invalid: {error}") from None
    function = await state.kube.get(
        path_for(API_VERSION, FUNCTION_PLURAL, namespace, trigger.function_name)
    )
    bound = _binding(trigger.function_name, namespace, function)
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
    if bound.status != TRUE:
        kopf.warn(body, reason=bound.reason, message=bound.message)
        raise kopf.TemporaryError(bound.message, delay=state.config.retry_delay_seconds)


def _binding(function_name: str, namespace: str, function: object | None) -> Condition:
    if function is None:
        return Condition(
            "FunctionBound",
            FALSE,
            "FunctionNotFound",
            f"the Function '{function_name}' does not exist in namespace '{namespace}'; "
            "create it (the Trigger binds as soon as it exists)",
        )
    return Condition("FunctionBound", TRUE, "Bound", f"calls Function '{function_name}'")


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
