"""kopf handlers for Triggers: binding to the Function, honest status, and the daemon that
fires schedules through the gateway."""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import kopf
from hanshu_api import API_VERSION, FUNCTION_PLURAL, GROUP, TRIGGER_PLURAL, VERSION
from hanshu_api.conditions import (
    FALSE,
    TRUE,
    Condition,
    merge_conditions,
    now_rfc3339,
    rfc3339,
    summarize,
)
from hanshu_api.cron import parse_cron
from hanshu_api.kube import path_for
from hanshu_api.models import SpecInvalid, TriggerSpec, parse_trigger_spec

from .config import OperatorConfig
from .metrics import instrumented
from .scheduler import FireRecord, invoke_through_gateway, run_schedule
from .state import operator_state


def _write_status(
    patch: kopf.Patch,
    status: Mapping[str, Any],
    conditions: Sequence[Condition],
    generation: int | None,
    **fields: Any,
) -> None:
    patch.status["conditions"] = merge_conditions(
        status.get("conditions"), conditions, generation, now_rfc3339()
    )
    if generation is not None:
        patch.status["observedGeneration"] = generation
    for key, value in fields.items():
        patch.status[key] = value


def trigger_url(gateway_url: str, trigger: TriggerSpec) -> str | None:
    if trigger.http is None:
        return None
    if trigger.http.host and not trigger.http.host.startswith("*."):
        scheme = gateway_url.split("://", 1)[0] if "://" in gateway_url else "http"
        return f"{scheme}://{trigger.http.host}{trigger.http.path}"
    return f"{gateway_url}{trigger.http.path}" if gateway_url else None


def trigger_delivery(
    config: OperatorConfig,
    trigger: TriggerSpec,
    now: datetime.datetime,
) -> tuple[Condition, dict[str, Any]]:
    """(Served condition, status fields) saying honestly whether anything delivers calls."""
    if trigger.http is not None:
        url = trigger_url(config.gateway_url, trigger)
        if not config.gateway_url:
            return Condition(
                "Served",
                FALSE,
                "NoGateway",
                "no gateway is configured (HANSHU_GATEWAY_URL is empty); install "
                "the Hanshu gateway to serve HTTP Triggers",
            ), {"url": url}
        return Condition("Served", TRUE, "Routed", f"the gateway serves this route at {url}"), {
            "url": url
        }
    assert trigger.schedule is not None
    next_fire = parse_cron(trigger.schedule.cron).next_after(now, trigger.schedule.time_zone)
    fields = {"nextFireTime": rfc3339(next_fire)}
    if not config.gateway_internal_url:
        return (
            Condition(
                "Served",
                FALSE,
                "NoGateway",
                "no gateway is configured (HANSHU_GATEWAY_INTERNAL_URL is empty); "
                "schedules fire through the gateway",
            ),
            fields,
        )
    return (
        Condition(
            "Served",
            TRUE,
            "Scheduled",
            f"fires at {trigger.schedule.cron} ({trigger.schedule.time_zone})",
        ),
        fields,
    )


def _is_schedule(spec: kopf.Spec, **_: Any) -> bool:
    return spec.get("schedule") is not None


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
    ``spec`` is kopf's live view: an edited cron, time zone or payload restarts the
    schedule at once."""
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
        while not stopped:
            current = json.dumps(dict(spec), sort_keys=True)
            try:
                trigger = parse_trigger_spec(spec, namespace)
            except SpecInvalid:
                return  # the reconcile reported it
            if trigger.schedule is None:
                return  # no longer a schedule
            url = (
                f"{state.config.gateway_internal_url}/_hanshu/invoke/{namespace}/"
                f"{trigger.function_name}"
            )
            fire = invoke_through_gateway(session, url, timeout=900)
            stop = asyncio.Event()
            runner = asyncio.create_task(run_schedule(name, trigger.schedule, fire, record, stop))
            while not stopped and json.dumps(dict(spec), sort_keys=True) == current:
                await stopped.wait(2)
            stop.set()
            await runner


@kopf.on.resume(GROUP, VERSION, TRIGGER_PLURAL)
@kopf.on.create(GROUP, VERSION, TRIGGER_PLURAL)
@kopf.on.update(GROUP, VERSION, TRIGGER_PLURAL)
@instrumented("Trigger")
async def reconcile_trigger(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    namespace: str | None,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    assert namespace is not None  # Triggers are namespaced
    state = operator_state(memo)
    generation = meta.get("generation")
    try:
        trigger = parse_trigger_spec(spec, namespace)
    except SpecInvalid as error:
        invalid = Condition("Valid", FALSE, "InvalidSpec", str(error))
        _write_status(patch, status, [summarize([invalid], "", ""), invalid], generation)
        kopf.warn(body, reason="InvalidSpec", message=str(error))
        raise kopf.PermanentError(f"the Trigger spec is invalid: {error}") from None
    valid = Condition("Valid", TRUE, "Valid", "the spec is valid")
    patch.status["type"] = trigger.source_type
    function = await state.kube.get(
        path_for(API_VERSION, FUNCTION_PLURAL, namespace, trigger.function_name)
    )
    if function is None:
        message = (
            f"the Function '{trigger.function_name}' does not exist in namespace "
            f"'{namespace}'; create it (the Trigger binds as soon as it exists)"
        )
        bound = Condition("FunctionBound", FALSE, "FunctionNotFound", message)
        _write_status(patch, status, [summarize([valid, bound], "", ""), valid, bound], generation)
        kopf.warn(body, reason="FunctionNotFound", message=message)
        raise kopf.TemporaryError(message, delay=state.config.retry_delay_seconds)
    bound = Condition("FunctionBound", TRUE, "Bound", f"calls Function '{trigger.function_name}'")
    served, fields = trigger_delivery(state.config, trigger, datetime.datetime.now(datetime.UTC))
    ready = summarize([valid, bound, served], "Ready", served.message)
    _write_status(patch, status, [ready, valid, bound, served], generation, **fields)


@kopf.on.event(GROUP, VERSION, FUNCTION_PLURAL)
async def unbind_triggers_of_deleted_function(
    type: str, name: str, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """A deleted Function leaves its Triggers unbound: say so on each of them."""
    if type != "DELETED" or namespace is None:
        return
    state = operator_state(memo)
    state.scaling.pop((namespace, name), None)
    for trigger in await state.kube.list_items(path_for(API_VERSION, TRIGGER_PLURAL, namespace)):
        if (trigger.get("spec") or {}).get("functionRef", {}).get("name") != name:
            continue
        status = trigger.get("status") or {}
        previous = status.get("conditions")
        message = f"the Function '{name}' was deleted; the Trigger binds again when it is recreated"
        bound = Condition("FunctionBound", FALSE, "FunctionNotFound", message)
        ready = Condition("Ready", FALSE, "FunctionNotFound", message)
        kept = [
            Condition(
                str(c["type"]),
                str(c["status"]),
                str(c.get("reason", "")),
                str(c.get("message", "")),
            )
            for c in previous or []
            if c.get("type") not in ("Ready", "FunctionBound")
        ]
        await state.kube.merge_patch(
            path_for(API_VERSION, TRIGGER_PLURAL, namespace, trigger["metadata"]["name"], "status"),
            {
                "status": {
                    "conditions": merge_conditions(
                        previous,
                        [ready, *kept, bound],
                        status.get("observedGeneration"),
                        now_rfc3339(),
                    )
                }
            },
        )
