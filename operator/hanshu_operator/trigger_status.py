"""A Trigger's status: the decisions (pure) and the one writer.

Several parts of the operator learn something about a Trigger: its reconcile (spec,
Function), a rival Trigger that takes or frees its route, a rotated API-key Secret. Each
passes what it learned to ``write_trigger_status``, which re-reads the Trigger under a lock
per Trigger and recomputes every condition, so none undoes another's write, and the route
verdict is always the one of the present (``state.triggers.routes``).

Cost: judging a Trigger compares its claim with the claims on its own route only (a
lookup in the route index), so judging n Triggers is O(n), not O(n^2).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import aiohttp
from hanshu_api import API_VERSION, TRIGGER_PLURAL
from hanshu_api.cron import parse_cron
from hanshu_api.event_sources import KubernetesSource, not_watchable_message
from hanshu_api.gateway_paths import events_path
from hanshu_api.kube import ApiError, path_for
from hanshu_api.models import SpecInvalid, TriggerSpec, parse_trigger_spec
from hanshu_api.route_claims import RouteClaim, RouteKey, conflict_message, route_owners

from .conditions import (
    FALSE,
    TRUE,
    UNKNOWN,
    Condition,
    find,
    merge_conditions,
    now_rfc3339,
    rfc3339,
    summarize,
)
from .config import OperatorConfig
from .kube_events import post_event
from .state import OperatorState
from .trigger_index import claim_of

log = logging.getLogger("hanshu.operator")

# HTTP route claims: route identity (host, path) -> the claims on it.
RouteIndex = Mapping[RouteKey, Iterable[RouteClaim]]

# A condition that turns False for one of these reasons is also a Warning Event: once per
# change (the writer compares with the status it replaces), never once per retry.
WARNED_REASONS = frozenset(
    {
        "RouteConflict",
        "SecretNotFound",
        "SecretKeyNotFound",
        "NoApiKeys",
        "SourceUnavailable",
        "KindNotWatchable",
    }
)
SOURCE_READY = "SourceReady"  # a stream Trigger's source: reachable and read
API_KEYS = "ApiKeysReady"
# kopf never retries an @on.event handler that fails: the re-judging of rivals and the
# re-publishing of keys retry API errors themselves, a few times.
EVENT_RETRY_DELAYS = (1.0, 3.0, 10.0)


def notification_url(gateway_url: str, namespace: str, name: str) -> str | None:
    """Where a bucket sends its notifications (MinIO webhook endpoint, SNS subscription)."""
    return f"{gateway_url}{events_path(namespace, name)}" if gateway_url else None


def trigger_url(gateway_url: str, trigger: TriggerSpec) -> str | None:
    if trigger.http is None:
        return None
    if trigger.http.host and not trigger.http.host.startswith("*."):
        scheme = gateway_url.split("://", 1)[0] if "://" in gateway_url else "http"
        return f"{scheme}://{trigger.http.host}{trigger.http.path}"
    return f"{gateway_url}{trigger.http.path}" if gateway_url else None


def route_owner(claim: RouteClaim, routes: RouteIndex) -> RouteClaim | None:
    """The older claim that owns ``claim``'s route, or None when ``claim`` owns it."""
    rivals = {rival.key: rival for rival in routes.get(claim.route, ())}
    rivals[claim.key] = claim  # the spec just read may be newer than the index
    return route_owners(rivals.values()).get(claim.key)


def kubernetes_delivery(config: OperatorConfig, source: KubernetesSource) -> Condition:
    """A kubernetes Trigger is served when the chart lets the gateway watch its kind: the
    gateway is granted read on the kinds in gateway.watchableKinds and no others."""
    if source.kind_key not in config.watchable_kinds:
        return Condition("Served", FALSE, "KindNotWatchable", not_watchable_message(source))
    return Condition(
        "Served",
        TRUE,
        "Watching",
        f"{', '.join(source.event_types)} events of {source.kind} ({source.api_version}) objects "
        "become Event invocations",
    )


def trigger_delivery(
    config: OperatorConfig,
    trigger: TriggerSpec,
    now: datetime.datetime,
    conflict: tuple[RouteClaim, RouteClaim] | None = None,
    where: tuple[str, str] = ("", ""),
) -> tuple[Condition, dict[str, Any]]:
    """(Served condition, status fields) saying honestly whether anything delivers calls.
    ``conflict`` is (this Trigger's claim, the older claim that owns the route);
    ``where`` the Trigger's (namespace, name)."""
    if trigger.stream is not None:
        stream = trigger.stream
        what = (
            f"NATS stream {stream.nats.stream}"
            if stream.nats is not None
            else f"Redis stream {stream.redis.stream}"  # type: ignore[union-attr]
        )
        if not config.nats.url:
            return Condition(
                "Served",
                FALSE,
                "NoNats",
                "no NATS is configured (HANSHU_NATS_URL is empty); stream Triggers are read "
                "by the dispatchers, which learn of them through NATS",
            ), {}
        mode = "in order" if stream.ordered else "in parallel"
        return Condition(
            "Served",
            TRUE,
            "Consuming",
            f"records of the {what} are invoked in batches of up to {stream.batch_size}, {mode}",
        ), {}
    if trigger.kubernetes is not None:
        return kubernetes_delivery(config, trigger.kubernetes), {}
    if trigger.object_storage is not None:
        storage = trigger.object_storage
        url = notification_url(config.gateway_url, *where)
        if url is None:
            return Condition(
                "Served",
                FALSE,
                "NoGateway",
                "no gateway is configured (HANSHU_GATEWAY_URL is empty); install the Hanshu "
                "gateway to receive bucket notifications",
            ), {}
        return Condition(
            "Served",
            TRUE,
            "Listening",
            f"bucket {storage.bucket} notifications ({', '.join(storage.events)}) to {url} "
            "become async invocations",
        ), {"url": url}
    if trigger.http is not None:
        url = trigger_url(config.gateway_url, trigger)
        if conflict is not None:
            # Before NoGateway: the user can fix a conflict, and must know of it before a
            # gateway is installed and serves the other Trigger.
            loser, owner = conflict
            message = conflict_message(loser, owner)
            return Condition("Served", FALSE, "RouteConflict", message), {"url": url}
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
    if not config.nats.url:
        return (
            Condition(
                "Served",
                FALSE,
                "NoNats",
                "no NATS is configured (HANSHU_NATS_URL is empty); schedules are fired by "
                "the dispatchers, which read them from NATS",
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


def _previous(conditions: Sequence[Mapping[str, Any]] | None, kind: str) -> Condition | None:
    found = find(conditions, kind)
    if found is None:
        return None
    return Condition(
        kind, str(found["status"]), str(found.get("reason", "")), str(found.get("message", ""))
    )


def trigger_conditions(
    config: OperatorConfig,
    body: Mapping[str, Any],
    routes: RouteIndex,
    now: datetime.datetime,
    bound: Condition | None = None,
    keys: Condition | None = None,
    source: Condition | None = None,
) -> list[Condition]:
    """Every condition of the Trigger ``body``: Valid and Served from its spec and the route
    claims; FunctionBound and ApiKeysReady as given, else as its status says (they are
    learned by reading other objects). Ready first, summarising the rest."""
    meta = body.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    previous = (body.get("status") or {}).get("conditions")
    try:
        trigger = parse_trigger_spec(body.get("spec") or {}, namespace)
    except SpecInvalid as error:
        invalid = Condition("Valid", FALSE, "InvalidSpec", str(error))
        return [summarize([invalid], "", ""), invalid]
    valid = Condition("Valid", TRUE, "Valid", "the spec is valid")
    bound = (
        bound
        or _previous(previous, "FunctionBound")
        or Condition("FunctionBound", UNKNOWN, "Pending", "the Function is not looked up yet")
    )
    claim = claim_of(namespace, name, meta, body.get("spec") or {})
    owner = route_owner(claim, routes) if claim is not None else None
    conflict = (claim, owner) if claim is not None and owner is not None else None
    served, _fields = trigger_delivery(config, trigger, now, conflict, (namespace, name))
    dependents = [valid, bound, served]
    if trigger.auth is not None:
        dependents.append(
            keys
            or _previous(previous, API_KEYS)
            or Condition(API_KEYS, UNKNOWN, "Pending", "the API keys are not published yet")
        )
    if trigger.stream is not None:
        dependents.append(
            source
            or _previous(previous, SOURCE_READY)
            or Condition(SOURCE_READY, UNKNOWN, "Connecting", "the source is not read yet")
        )
    return [summarize(dependents, "Ready", served.message), *dependents]


def newly_warned(
    previous: Sequence[Mapping[str, Any]] | None, conditions: Iterable[Condition]
) -> list[Condition]:
    """The conditions that just turned False for a reason worth a Warning Event (or whose
    message changed: another owner, another missing key)."""
    warned = []
    for condition in conditions:
        if condition.type == "Ready" or condition.status != FALSE:
            continue
        if condition.reason not in WARNED_REASONS:
            continue
        if _previous(previous, condition.type) != condition:
            warned.append(condition)
    return warned


async def write_trigger_status(
    state: OperatorState,
    namespace: str,
    name: str,
    routes: RouteIndex,
    *,
    bound: Condition | None = None,
    keys: Condition | None = None,
    source: Condition | None = None,
    generation: int | None = None,
    **fields: Any,
) -> dict[str, Any] | None:
    """The one writer of a Trigger's status; returns the Trigger, or None when it is gone.

    ``generation`` is given by the reconcile (the generation it judged): only a reconcile
    writes the first status; the others only re-judge a Trigger that has one. Nothing is
    written when nothing changed, so re-checking a route's rivals costs one GET each.
    """
    async with state.trigger_status_lock(namespace, name):
        path = path_for(API_VERSION, TRIGGER_PLURAL, namespace, name)
        body = await state.kube.get(path)
        if body is None:
            return None
        status = body.get("status") or {}
        previous = status.get("conditions")
        if generation is None and find(previous, "Valid") is None:
            return body  # not reconciled yet: the reconcile writes the first status
        conditions = trigger_conditions(
            state.config, body, routes, state.clock.now(), bound=bound, keys=keys, source=source
        )
        observed = generation if generation is not None else status.get("observedGeneration")
        merged = merge_conditions(previous, conditions, observed, now_rfc3339())
        update: dict[str, Any] = {"conditions": merged, **fields}
        if observed is not None:
            update["observedGeneration"] = observed
        if _unchanged(status, update):
            return body
        await state.kube.merge_patch(f"{path}/status", {"status": update})
    for condition in newly_warned(previous, conditions):
        await post_event(state.kube, body, "Warning", condition.reason, condition.message)
    return body


def _unchanged(status: Mapping[str, Any], update: Mapping[str, Any]) -> bool:
    def essence(conditions: Any) -> list[tuple[Any, ...]]:
        return [
            (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
            for c in conditions or ()
        ]

    if essence(status.get("conditions")) != essence(update["conditions"]):
        return False
    return all(status.get(key) == value for key, value in update.items() if key != "conditions")


async def with_retries(
    what: str,
    call: Callable[[], Awaitable[object]],
    delays: Sequence[float] = EVENT_RETRY_DELAYS,
) -> None:
    """Run ``call``; on an API or network error retry after each delay, then log and give
    up (the next event or the operator's restart judges again)."""
    for delay in (*delays, None):
        try:
            await call()
            return
        except (ApiError, aiohttp.ClientError, OSError) as error:
            if delay is None:
                log.error("%s failed, giving up until the next change: %s", what, error)
                return
            log.warning("%s failed, retrying in %.0f s: %s", what, delay, error)
            await asyncio.sleep(delay)
