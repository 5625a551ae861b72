"""kopf handlers: the I/O edge of the operator. Decisions live in builders / status / models.

Function -> code ConfigMap + Deployment + Service (adopted), status and Events.
Deployment and Pod events -> the owning Function's status (replicas, readiness, faults).
Trigger -> bound to its Function, status with the URL or the next fire time.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import kopf
from aiohttp import web
from hanshu_api import (
    API_VERSION,
    FUNCTION_KIND,
    FUNCTION_PLURAL,
    GROUP,
    LABEL_FUNCTION,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    TRIGGER_PLURAL,
    VERSION,
)
from hanshu_api.conditions import (
    FALSE,
    TRUE,
    UNKNOWN,
    Condition,
    find,
    merge_conditions,
    now_rfc3339,
    summarize,
)
from hanshu_api.cron import parse_cron
from hanshu_api.kube import KubeClient, load_config, path_for
from hanshu_api.models import (
    FunctionSpec,
    Scaling,
    SpecInvalid,
    TriggerSpec,
    parse_function_spec,
    parse_trigger_spec,
)
from hanshu_api.platform import FunctionKey

from .autoscaler import Decision, Policy
from .autoscaling_service import AutoscalerService
from .builders import (
    build_code_config_map,
    build_deployment,
    build_network_policy,
    build_service,
    code_checksum,
    deployment_update,
    function_url,
)
from .config import OperatorConfig, config_from_env
from .events import post_event
from .kube_scaler import KubeScaler
from .metrics import FUNCTION_REPLICAS, instrumented
from .references import missing_env_sources, resolve_code
from .scheduler import FireRecord, invoke_through_gateway, run_schedule
from .status import (
    deployment_conditions,
    function_conditions,
    pod_fault,
    previous_dependent,
    replica_counts,
)

log = logging.getLogger("hanshu.operator")


@dataclass
class OperatorState:
    config: OperatorConfig
    kube: KubeClient
    # The last start-up fault a Function's pods reported, until one of them becomes ready.
    runtime_faults: dict[tuple[str, str], str] = field(default_factory=dict)
    metrics_server: Any = None
    scaler: KubeScaler | None = None
    # Each Function's scaling spec, for the autoscaler (filled by the reconcile).
    scaling: dict[FunctionKey, Scaling] = field(default_factory=dict)
    autoscaler: AutoscalerService | None = None
    background: list[Any] = field(default_factory=list)
    _status_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    def status_lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self._status_locks.setdefault((namespace, name), asyncio.Lock())


def _state(memo: kopf.Memo) -> OperatorState:
    state: OperatorState = memo["hanshu"]
    return state


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Every operator setting, in one place."""
    # Progress and the last-handled spec go to annotations: the CRDs' structural schemas
    # would prune kopf's default status.kopf field.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    # We watch exact namespaces (or the whole cluster) and our CRDs are installed before us
    # (Helm's crds/), so there is nothing to rescan at run time.
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    settings.queueing.error_delays = (1, 2, 5, 10, 30, 60)
    config = config_from_env()
    state = OperatorState(config=config, kube=KubeClient(load_config()))
    if config.metrics_port:
        from prometheus_client import start_http_server

        state.metrics_server = start_http_server(config.metrics_port)
    memo["hanshu"] = state
    if config.autoscaler_port:
        await start_autoscaler(state)


async def start_autoscaler(state: OperatorState) -> None:
    """The autoscaler: gateways POST stats to it; it scales Deployments and says why."""
    config = state.config
    state.scaler = KubeScaler(state.kube)
    policy = Policy(
        config.stable_window_seconds, config.panic_window_seconds, config.panic_threshold
    )

    async def on_scaled(key: FunctionKey, decision: Decision, previous: int) -> None:
        namespace, name = key
        function = await write_function_status(
            state,
            namespace,
            name,
            lastScale={
                "replicas": decision.replicas,
                "reason": decision.reason,
                "message": decision.message,
                "time": now_rfc3339(),
            },
        )
        if function is not None:
            await post_event(
                state.kube,
                function,
                "Normal",
                decision.reason,
                f"{previous} -> {decision.replicas} replicas: {decision.message}",
            )

    state.autoscaler = AutoscalerService(
        state.scaler, lambda: list(state.scaling.items()), policy=policy, on_scaled=on_scaled
    )
    runner = web.AppRunner(state.autoscaler.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", config.autoscaler_port).start()
    state.background += [runner, asyncio.create_task(state.autoscaler.run())]


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf and our own client use the same credentials: in-cluster or KUBECONFIG."""
    config = load_config()
    token = config.token
    if token is None and config.token_file:
        with open(config.token_file, encoding="utf-8") as token_file:
            token = token_file.read().strip()
    return kopf.ConnectionInfo(
        server=config.server,
        ca_path=config.ca_file,
        insecure=config.insecure,
        token=token,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
        default_namespace=config.namespace,
        # Bound service-account tokens expire; kopf logs in again when the API says 401.
    )


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    state = _state(memo)
    for item in state.background:
        if isinstance(item, asyncio.Task):
            item.cancel()
        else:
            await item.cleanup()
    await state.kube.close()
    if state.metrics_server is not None:
        server, _thread = state.metrics_server
        server.shutdown()


# -- Function --------------------------------------------------------------------------------


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


async def _apply(
    kube: KubeClient, manifest: Mapping[str, Any], update: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], bool]:
    """Create the object, or merge-patch it when it exists. Returns (object, created)."""
    meta = manifest["metadata"]
    plural = {
        "ConfigMap": "configmaps",
        "Service": "services",
        "Deployment": "deployments",
        "NetworkPolicy": "networkpolicies",
    }[manifest["kind"]]
    path = path_for(manifest["apiVersion"], plural, meta["namespace"], meta["name"])
    existing = await kube.get(path)
    if existing is None:
        collection = path_for(manifest["apiVersion"], plural, meta["namespace"])
        return await kube.create(collection, manifest), True
    return await kube.merge_patch(path, update if update is not None else manifest), False


async def _children(
    state: OperatorState,
    body: kopf.Body,
    name: str,
    namespace: str,
    spec: FunctionSpec,
    referenced_code: Mapping[str, str] | None,
    generation: int | None,
) -> dict[str, Any]:
    config = state.config
    checksum = code_checksum(spec, referenced_code)
    code_map = build_code_config_map(name, namespace, spec)
    deployment = build_deployment(name, namespace, spec, config, checksum, generation)
    service = build_service(name, namespace)
    policy = build_network_policy(name, namespace, config)
    children = [c for c in (code_map, deployment, service, policy) if c is not None]
    kopf.adopt(children, owner=body)
    for child in (code_map, service, policy):
        if child is not None:
            _, created = await _apply(state.kube, child)
            if created:
                kopf.info(
                    body,
                    reason="Created",
                    message=f"Created {child['kind']} {child['metadata']['name']}",
                )
    current, created = await _apply(state.kube, deployment, deployment_update(deployment))
    if created:
        kopf.info(body, reason="Created", message=f"Created Deployment {name}")
    else:
        current = await _clamp_replicas(state.kube, body, current, spec)
    return current


async def _clamp_replicas(
    kube: KubeClient, body: kopf.Body, deployment: dict[str, Any], spec: FunctionSpec
) -> dict[str, Any]:
    """Replicas belong to the autoscaler; the operator only moves them into new bounds."""
    replicas = int((deployment.get("spec") or {}).get("replicas") or 0)
    bounded = min(max(replicas, spec.scaling.min_replicas), spec.scaling.max_replicas)
    if bounded == replicas:
        return deployment
    meta = deployment["metadata"]
    await kube.merge_patch(
        path_for("apps/v1", "deployments", meta["namespace"], meta["name"], "scale"),
        {"spec": {"replicas": bounded}},
    )
    reason = "MinReplicas" if bounded > replicas else "MaxReplicas"
    kopf.info(body, reason="Scaled", message=f"{reason}: {replicas} -> {bounded} replicas")
    deployment.setdefault("spec", {})["replicas"] = bounded
    return deployment


_FROM_API = object()  # "read the Deployment from the API" (None means: there is none)


async def write_function_status(
    state: OperatorState,
    namespace: str,
    name: str,
    *,
    configuration: Condition | None = None,
    code: Condition | None = None,
    deployment: Mapping[str, Any] | object | None = _FROM_API,
    generation: int | None = None,
    **fields: Any,
) -> dict[str, Any] | None:
    """The one writer of a Function's status.

    The reconcile (spec and code verdicts) and the Deployment / Pod watchers (replicas,
    readiness, faults) all write the one ``conditions`` list; a lock per Function makes
    each write a read-modify-write of the latest status, so none undoes another. Returns
    the Function (for Events), or None when it is gone.
    """
    async with state.status_lock(namespace, name):
        function = await state.kube.get(path_for(API_VERSION, FUNCTION_PLURAL, namespace, name))
        if function is None:
            return None
        status = function.get("status") or {}
        previous = status.get("conditions")
        if configuration is None and find(previous, "ConfigurationValid") is None:
            return function  # not reconciled yet: the reconcile writes the first status
        if deployment is _FROM_API:
            deployment = await state.kube.get(path_for("apps/v1", "deployments", namespace, name))
        current = deployment if isinstance(deployment, Mapping) else None
        conditions = function_conditions(
            configuration or previous_dependent(previous, "ConfigurationValid"),
            code or previous_dependent(previous, "CodeReady"),
            *deployment_conditions(current, state.runtime_faults.get((namespace, name))),
        )
        observed = generation if generation is not None else status.get("observedGeneration")
        new_status: dict[str, Any] = {
            "conditions": merge_conditions(previous, conditions, observed, now_rfc3339()),
            **replica_counts(current),
            **fields,
        }
        if observed is not None:
            new_status["observedGeneration"] = observed
        FUNCTION_REPLICAS.labels(namespace, name, "desired").set(new_status["desiredReplicas"])
        FUNCTION_REPLICAS.labels(namespace, name, "ready").set(new_status["readyReplicas"])
        if any(status.get(key) != value for key, value in new_status.items()):
            await state.kube.merge_patch(
                path_for(API_VERSION, FUNCTION_PLURAL, namespace, name, "status"),
                {"status": new_status},
            )
        return function


@kopf.on.resume(GROUP, VERSION, FUNCTION_PLURAL)
@kopf.on.create(GROUP, VERSION, FUNCTION_PLURAL)
@kopf.on.update(GROUP, VERSION, FUNCTION_PLURAL)
@instrumented("Function")
async def reconcile_function(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    name: str,
    namespace: str | None,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    assert namespace is not None  # Functions are namespaced
    state = _state(memo)
    generation = meta.get("generation")
    try:
        function = parse_function_spec(spec)
    except SpecInvalid as error:
        await write_function_status(
            state,
            namespace,
            name,
            generation=generation,
            configuration=Condition("ConfigurationValid", FALSE, "InvalidSpec", str(error)),
            code=Condition(
                "CodeReady", UNKNOWN, "InvalidSpec", "not checked while the spec is invalid"
            ),
        )
        kopf.warn(body, reason="InvalidSpec", message=str(error))
        raise kopf.PermanentError(f"the Function spec is invalid: {error}") from None
    valid = Condition("ConfigurationValid", TRUE, "Valid", "the spec is valid")

    referenced_code, missing_code = await resolve_code(state.kube, namespace, function)
    missing = ([missing_code] if missing_code else []) + await missing_env_sources(
        state.kube, namespace, function
    )
    if missing:
        message = "; ".join(m.message for m in missing)
        await write_function_status(
            state,
            namespace,
            name,
            generation=generation,
            configuration=valid,
            code=Condition("CodeReady", FALSE, missing[0].reason, message),
        )
        kopf.warn(body, reason=missing[0].reason, message=message)
        raise kopf.TemporaryError(message, delay=state.config.retry_delay_seconds)

    deployment = await _children(
        state, body, name, namespace, function, referenced_code, generation
    )
    state.scaling[(namespace, name)] = function.scaling
    if state.scaler is not None:
        state.scaler.observe((namespace, name), (deployment.get("spec") or {}).get("replicas"))
    await write_function_status(
        state,
        namespace,
        name,
        generation=generation,
        configuration=valid,
        code=Condition("CodeReady", TRUE, "CodeAvailable", "the code is in place"),
        deployment=deployment,
        url=function_url(name, namespace, state.config.cluster_domain),
    )


_MANAGED = {LABEL_MANAGED_BY: MANAGED_BY}


@kopf.on.event("apps", "v1", "deployments", labels=_MANAGED)
async def follow_deployment(
    body: kopf.Body,
    type: str,
    namespace: str | None,
    labels: kopf.Labels,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    name = labels.get(LABEL_FUNCTION)
    if not name or namespace is None:
        return
    state = _state(memo)
    if state.scaler is not None:
        replicas = None if type == "DELETED" else (body.get("spec") or {}).get("replicas")
        state.scaler.observe((namespace, name), replicas)
    await write_function_status(
        state, namespace, name, deployment=None if type == "DELETED" else dict(body)
    )


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


@kopf.on.event("", "v1", "pods", labels=_MANAGED)
async def follow_pod(
    body: kopf.Body,
    type: str,
    namespace: str | None,
    labels: kopf.Labels,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    name = labels.get(LABEL_FUNCTION)
    if not name or namespace is None:
        return
    state = _state(memo)
    key = (namespace, name)
    before = state.runtime_faults.get(key)
    fault = None if type == "DELETED" else pod_fault(body)
    if fault is not None:
        state.runtime_faults[key] = fault
    elif before is not None and (type == "DELETED" or _pod_ready(body)):
        del state.runtime_faults[key]
    if state.runtime_faults.get(key) == before:
        return
    function = await write_function_status(state, namespace, name)
    if function is not None and fault is not None:
        body_of_function = kopf.Body(function)  # type: ignore[arg-type]  # a dict is a RawBody
        kopf.warn(body_of_function, reason="RuntimeStartupFailed", message=fault)


# -- Trigger ---------------------------------------------------------------------------------


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
    fields = {"nextFireTime": _rfc3339(next_fire)}
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


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    state = _state(memo)
    if not state.config.gateway_internal_url:
        return  # the Served condition already says why nothing fires
    status_path = path_for(API_VERSION, TRIGGER_PLURAL, namespace, name, "status")

    async def record(fire: FireRecord) -> None:
        status: dict[str, Any] = {"nextFireTime": _rfc3339(fire.next_fire)}
        if fire.last_fire is not None:
            status["lastFireTime"] = _rfc3339(fire.last_fire)
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
    state = _state(memo)
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
    state = _state(memo)
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


__all__ = ["FUNCTION_KIND", "OperatorState", "reconcile_function", "reconcile_trigger"]
