"""kopf handlers for Functions: children, status, and what their Deployments and Pods say.

The I/O edge: decisions live in builders, status and hanshu_api.models.

Cost: a reconcile is a constant number of API calls for its own children (a GET and an
apply each, the Deployment's handover, one status write); a Deployment or pod event
writes its own Function's status and reads no other object. At a restart, a Deployment
listed before its Function's resume costs nothing but a replica count (see
``follow_deployment``). Kept per Function: see ``state``.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import kopf
from hanshu_api import (
    API_VERSION,
    FUNCTION_PLURAL,
    GROUP,
    LABEL_FUNCTION,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    VERSION,
)
from hanshu_api.conditions import replica_fault
from hanshu_api.kube import ApiError, KubeClient, path_for
from hanshu_api.models import FunctionSpec, SpecInvalid, parse_function_spec
from hanshu_api.replica_scale import REPLICAS_MANAGER, scale
from hanshu_api.versions import LABEL_VERSION_OF, function_name_problem

from .bounded import bounded
from .builders import (
    VersionOf,
    build_code_config_map,
    build_deployment,
    build_network_policy,
    build_service,
    code_checksum,
    code_config_map_name,
    function_url,
    owns_replicas_alone,
    replicas_only,
    with_replicas,
)
from .conditions import (
    FALSE,
    TRUE,
    UNKNOWN,
    Condition,
    find,
    merge_conditions,
    now_rfc3339,
)
from .function_status import (
    deployment_conditions,
    function_conditions,
    pool_condition,
    previous_dependent,
    replica_counts,
    version_conditions,
)
from .kube_events import post_event
from .metrics import REPLICA_COUNTS, instrumented
from .references import missing_env_sources, resolve_code
from .replica_faults import (
    StartFailure,
    deployment_version,
    replica_failure,
    report_pod,
)
from .state import OperatorState, operator_state

# The operator's server-side-apply identity: it owns every field it applies to a child, and
# a field it stops applying (a deleted inline file, a removed toleration) is removed.
FIELD_MANAGER = MANAGED_BY

_PLURALS = {
    "ConfigMap": "configmaps",
    "Service": "services",
    "Deployment": "deployments",
    "NetworkPolicy": "networkpolicies",
}


def _path_of(manifest: Mapping[str, Any]) -> str:
    meta = manifest["metadata"]
    plural = _PLURALS[manifest["kind"]]
    return path_for(manifest["apiVersion"], plural, meta["namespace"], meta["name"])


async def _apply_child(kube: KubeClient, body: kopf.Body, child: Mapping[str, Any]) -> None:
    path = _path_of(child)
    # Apply creates a missing object too; the read is only for the Created event.
    existed = await kube.get(path) is not None
    await kube.apply(path, child, FIELD_MANAGER)
    if not existed:
        kind, name = child["kind"], child["metadata"]["name"]
        kopf.info(body, reason="Created", message=f"Created {kind} {name}")


async def _hand_over_replicas(
    kube: KubeClient, path: str, deployment: Mapping[str, Any], replicas: int
) -> dict[str, Any] | None:
    """Apply ``spec.replicas`` as the autoscaler's manager, so that it co-owns the field.

    Not forced: a conflict means another writer (a scale) already holds the field with
    another value, which is all the handover is for; the docs say to do nothing then.
    Returns the Deployment, or None after a conflict.
    """
    try:
        return await kube.apply(
            path, replicas_only(deployment, replicas), REPLICAS_MANAGER, force=False
        )
    except ApiError as error:
        if error.status != HTTPStatus.CONFLICT:
            raise
        return None


async def _apply_deployment(
    kube: KubeClient, body: kopf.Body, deployment: Mapping[str, Any], spec: FunctionSpec
) -> dict[str, Any]:
    """Apply the Deployment without ever leaving ``spec.replicas`` to the operator alone.

    Kubernetes' recipe for handing a field to another controller ("Server-Side Apply:
    Transferring ownership", the HorizontalPodAutoscaler example,
    https://kubernetes.io/docs/reference/using-api/server-side-apply/#transferring-ownership):
    a manager that stops applying a field it owns alone makes the API server remove it (a
    Deployment then defaults to 1 replica), so the field is first applied with the same
    value by a second manager, which then co-owns it. So: create with the initial count,
    at once apply that count as the autoscaler's manager, and never send it again.
    """
    path = _path_of(deployment)
    existing = await kube.get(path)
    if existing is None:
        initial = spec.scaling.min_replicas
        created = await kube.apply(path, with_replicas(deployment, initial), FIELD_MANAGER)
        handed = await _hand_over_replicas(kube, path, deployment, initial)
        name = deployment["metadata"]["name"]
        kopf.info(body, reason="Created", message=f"Created Deployment {name}")
        # After a conflict, someone scaled it meanwhile: read what they set.
        return handed or await kube.get(path) or created
    if owns_replicas_alone(existing, FIELD_MANAGER):
        # Stopped between the two creation applies: hand the count over before dropping it.
        current = int((existing.get("spec") or {}).get("replicas") or 0)
        await _hand_over_replicas(kube, path, deployment, current)
    applied = await kube.apply(path, deployment, FIELD_MANAGER)
    return await _clamp_replicas(kube, body, applied, spec)


async def _children(
    state: OperatorState,
    body: kopf.Body,
    name: str,
    namespace: str,
    spec: FunctionSpec,
    referenced_code: Mapping[str, str] | None,
    generation: int | None,
    version_of: VersionOf | None = None,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The children of $LATEST (``name`` is the Function's), or of a published version
    (``name`` is its key, ``owner`` its FunctionVersion; Events still go on ``body``)."""
    config = state.config
    owner = owner if owner is not None else body
    checksum = code_checksum(spec, referenced_code)
    code_map = build_code_config_map(name, namespace, spec, version_of)
    deployment = build_deployment(name, namespace, spec, config, checksum, generation, version_of)
    service = build_service(name, namespace, version_of)
    policy = build_network_policy(name, namespace, config, version_of)
    children = [c for c in (code_map, deployment, service, policy) if c is not None]
    kopf.adopt(children, owner=owner)  # type: ignore[arg-type]
    for child in (code_map, service, policy):
        if child is not None:
            await _apply_child(state.kube, body, child)
    # A child the spec no longer asks for goes too: the inline code after a switch to an
    # image, the NetworkPolicy after the chart turned it off.
    if code_map is None:
        await _remove_child(state.kube, body, "v1", "configmaps", code_config_map_name(name), owner)
    if policy is None:
        await _remove_child(state.kube, body, NETWORKING, "networkpolicies", name, owner)
    return await _apply_deployment(state.kube, body, deployment, spec)


NETWORKING = "networking.k8s.io/v1"


async def _remove_child(
    kube: KubeClient,
    body: kopf.Body,
    api_version: str,
    plural: str,
    name: str,
    owner: Mapping[str, Any] | None = None,
    why: str = "the spec no longer needs it",
) -> None:
    """Delete the object if this Function (or ``owner``, a version of it) owns it: never a
    user's object of that name."""
    namespace = body["metadata"]["namespace"]
    path = path_for(api_version, plural, namespace, name)
    found = await kube.get(path)
    if found is None or not _owned_by(found, owner if owner is not None else body):
        return
    await kube.delete(path)
    kind = found.get("kind") or plural
    kopf.info(body, reason="Deleted", message=f"Deleted {kind} {name}: {why}")


def _owned_by(child: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    uid = owner["metadata"].get("uid")
    references = (child.get("metadata") or {}).get("ownerReferences") or []
    return uid is not None and any(ref.get("uid") == uid for ref in references)


async def _clamp_replicas(
    kube: KubeClient, body: kopf.Body, deployment: dict[str, Any], spec: FunctionSpec
) -> dict[str, Any]:
    """Replicas belong to the autoscaler; the operator only moves them into new bounds."""
    replicas = int((deployment.get("spec") or {}).get("replicas") or 0)
    bounded = min(max(replicas, spec.scaling.min_replicas), spec.scaling.max_replicas)
    if bounded == replicas:
        return deployment
    meta = deployment["metadata"]
    await scale(kube, (meta["namespace"], meta["name"]), bounded)
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
    version_verdicts: Mapping[str, Condition | None] | None = None,
    **fields: Any,
) -> dict[str, Any] | None:
    """The one writer of a Function's status (but ``status.aliases`` and
    ``status.canaries``, the canary controller's: never written here).

    ``version_verdicts``: the versions' conditions (AliasesValid, CanaryHealthy) recomputed by
    their sync (``function_versions``); those not given stay as they were.

    The reconcile (spec and code verdicts) and the Deployment / Pod watchers (replicas,
    readiness, faults) all write the one ``conditions`` list; a lock per Function makes
    each write a read-modify-write of the latest status, so none undoes another. Returns
    the Function (for Events), or None when it is gone.
    """
    key = (namespace, name)
    async with state.status_lock(namespace, name):
        function = await state.kube.get(path_for(API_VERSION, FUNCTION_PLURAL, namespace, name))
        if function is None:
            state.forget_function(key)
            return None
        status = function.get("status") or {}
        previous = status.get("conditions")
        if configuration is None and find(previous, "ConfigurationValid") is None:
            return function  # not reconciled yet: the reconcile writes the first status
        if deployment is _FROM_API:
            deployment = await state.kube.get(path_for("apps/v1", "deployments", namespace, name))
        current = deployment if isinstance(deployment, Mapping) else None
        failure = replica_failure(current, list(state.pod_reports.get(key, {}).values()))
        conditions = function_conditions(
            configuration or previous_dependent(previous, "ConfigurationValid"),
            code or previous_dependent(previous, "CodeReady"),
            *deployment_conditions(current, failure),
            pool_condition(
                function.get("spec"),
                namespace,
                state.config.warm_pools,
                state.config.default_resources,
            ),
            *version_conditions(previous, version_verdicts or {}),
        )
        observed = generation if generation is not None else status.get("observedGeneration")
        new_status: dict[str, Any] = {
            "conditions": merge_conditions(previous, conditions, observed, now_rfc3339()),
            **replica_counts(current),
            **fields,
        }
        if observed is not None:
            new_status["observedGeneration"] = observed
        fault = replica_fault({"status": new_status})  # what the gateway reads, too
        REPLICA_COUNTS.set(
            key,
            new_status["desiredReplicas"],
            new_status["readyReplicas"],
            None if fault is None else fault.reason,
        )
        if any(status.get(field) != value for field, value in new_status.items()):
            await state.kube.merge_patch(
                path_for(API_VERSION, FUNCTION_PLURAL, namespace, name, "status"),
                {"status": new_status},
            )
        warning = _first_warning(state, key, current, failure)
    if warning is not None:
        await post_event(state.kube, function, "Warning", warning.reason, warning.message)
    return function


def _first_warning(
    state: OperatorState,
    key: tuple[str, str],
    deployment: Mapping[str, Any] | None,
    failure: StartFailure | None,
) -> StartFailure | None:
    """The failure to post a Warning Event for: once per failure (its signature) and pod
    template, never per kubelet retry. A replica that crash-loops is ready between crashes,
    so the failure comes and goes; only a new one, or the same after the user changed the
    Function (a new template), is news. Called under the Function's status lock."""
    if failure is None:
        return None
    seen = (deployment_version(deployment), failure.reason, failure.signature)
    if state.warned.get(key) == seen:
        return None
    state.warned[key] = seen
    return failure


@kopf.on.resume(GROUP, VERSION, FUNCTION_PLURAL)
@kopf.on.create(GROUP, VERSION, FUNCTION_PLURAL)
@kopf.on.update(GROUP, VERSION, FUNCTION_PLURAL)
@bounded
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
    state = operator_state(memo)
    generation = meta.get("generation")
    try:
        name_problem = function_name_problem(name)  # the CRD's rule, where it did not run
        if name_problem:
            raise SpecInvalid([name_problem])
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
    # Its published versions: children of the referenced ones, retention, their status.
    # (Imported here: function_versions builds on this module.)
    from .function_versions import sync_versions

    await sync_versions(state, namespace, name, body=body)


_MANAGED = {LABEL_MANAGED_BY: MANAGED_BY}


@kopf.on.event("apps", "v1", "deployments", labels=_MANAGED)
async def follow_deployment(
    body: kopf.Body,
    type: str | None,
    namespace: str | None,
    labels: kopf.Labels,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    name = labels.get(LABEL_FUNCTION)
    if not name or namespace is None:
        return
    state = operator_state(memo)
    version_of = labels.get(LABEL_VERSION_OF)
    if version_of:
        # A published version's Deployment: its replicas are in the Function's
        # status.versions (its own status belongs to no Function named like it).
        if type is not None:
            from .function_versions import sync_versions

            async with state.reconcile_slots:  # (``bounded``)
                await sync_versions(state, namespace, version_of, children=False)
        return
    key = (namespace, name)
    if type is None and REPLICA_COUNTS.get(key) is None:
        # Listed at start-up, before its Function's resume: that reconcile writes the
        # status from the Deployment it applies. Writing here too would cost every
        # Deployment a GET and a PATCH more at a restart, and keep kopf holding each
        # Deployment's body (~50 KiB with its managedFields) in its queue meanwhile.
        return
    async with state.reconcile_slots:  # (``bounded``)
        await write_function_status(
            state, namespace, name, deployment=None if type == "DELETED" else dict(body)
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
    pod_name = body.get("metadata", {}).get("name")
    if not name or namespace is None or not pod_name or labels.get(LABEL_VERSION_OF):
        return  # (a published version's pod faults are not reported yet: docs/versions.md)
    state = operator_state(memo)
    pods = state.pod_reports.setdefault((namespace, name), {})
    before = pods.get(pod_name)
    if type == "DELETED":
        pods.pop(pod_name, None)
        after = None
    else:
        after = pods[pod_name] = report_pod(body, before)
    if not pods:
        del state.pod_reports[(namespace, name)]
    if (before and before.failure) == (after and after.failure):
        # Nothing the status says changed (a retry, or a step of a normal start): the
        # report is kept for the next write (a progress deadline lists the pods' steps).
        return
    async with state.reconcile_slots:  # (``bounded``)
        await write_function_status(state, namespace, name)
