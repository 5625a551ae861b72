"""The warm pools the chart asks for, kept by the operator: each pooled namespace's
``hanshu-pool`` Deployment, token Secret and NetworkPolicy (``pool_builders``), and the
sweep of specialized pods nobody retired.

The namespace set is the chart's setting, read at start-up (``HANSHU_WARM_POOLS``): a
changed list is a new operator pod, as every other setting is. One background task keeps
them all: it applies the children at once and again every ``REAPPLY_SECONDS`` (a deleted
Secret or Deployment comes back), and sweeps every ``SWEEP_SECONDS``.

A specialized pod (claimed by a gateway: ``pool-state=specialized``) serves one Function
until that Function's own replicas are ready; the gateway then retires it. The sweep
deletes it when the gateway could not: the Function has ready replicas, or is gone, or
the pod was claimed longer ago than ``warm_pool_specialized_seconds``.

Cost: per pooled namespace, one pod list (by label: the specialized ones only) per sweep
and a GET of each specialized pod's Function and Deployment, a handful at a time.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Mapping
from typing import Any

from hanshu_api import API_VERSION, FUNCTION_PLURAL, MANAGED_BY
from hanshu_api.kube import ApiError, KubeClient, path_for
from hanshu_api.warm_pool import (
    ANNOTATION_SPECIALIZED_AT,
    LABEL_POOL,
    LABEL_POOL_STATE,
    LABEL_SPECIALIZED_FOR,
    POOL_STATE_SPECIALIZED,
    PoolShape,
)

from .pool_builders import POOL_GRACE_SECONDS, pool_children
from .state import OperatorState

log = logging.getLogger("hanshu.operator.pool")

SWEEP_SECONDS = 10.0
REAPPLY_SECONDS = 60.0
_PLURALS = {"Secret": "secrets", "NetworkPolicy": "networkpolicies", "Deployment": "deployments"}
SPECIALIZED_SELECTOR = f"{LABEL_POOL},{LABEL_POOL_STATE}={POOL_STATE_SPECIALIZED}"


def _parse_time(value: object) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def claimed_at(pod: Mapping[str, Any]) -> datetime.datetime | None:
    """When the gateway claimed the pod (its annotation), else when the pod was created:
    an unreadable claim time never keeps a pod for ever."""
    meta = pod.get("metadata") or {}
    return _parse_time((meta.get("annotations") or {}).get(ANNOTATION_SPECIALIZED_AT)) or (
        _parse_time(meta.get("creationTimestamp"))
    )


def sweep_reason(
    pod: Mapping[str, Any],
    function: Mapping[str, Any] | None,
    deployment: Mapping[str, Any] | None,
    now: datetime.datetime,
    bound_seconds: float,
) -> str | None:
    """Why a specialized pod must go now, or None while it still serves a cold Function."""
    if function is None:
        return "its Function no longer exists"
    ready = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)
    if ready > 0:
        return f"its Function has {ready} ready replica(s) of its own"
    since = claimed_at(pod)
    if since is None or (now - since).total_seconds() > bound_seconds:
        return f"it was claimed over {bound_seconds:.0f} s ago"
    return None


async def apply_pool(state: OperatorState, namespace: str, shape: PoolShape) -> None:
    """Server-side apply of the pool's children: an unchanged one is no write."""
    for child in pool_children(namespace, shape, state.config):
        meta = child["metadata"]
        plural = _PLURALS[child["kind"]]
        path = path_for(child["apiVersion"], plural, namespace, meta["name"])
        await state.kube.apply(path, child, MANAGED_BY)


async def delete_pod(kube: KubeClient, namespace: str, name: str) -> None:
    """With a grace period: requests in flight on a specialized pod finish."""
    path = path_for("v1", "pods", namespace, name)
    try:
        await kube.request(
            "DELETE",
            path,
            body={
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "gracePeriodSeconds": POOL_GRACE_SECONDS,
            },
        )
    except ApiError as error:
        if error.status != 404:
            raise


async def sweep(state: OperatorState, namespace: str, now: datetime.datetime) -> list[str]:
    """Delete the specialized pods of ``namespace`` that must go; their names."""
    kube = state.kube
    swept = []
    for pod in await kube.list_items(path_for("v1", "pods", namespace), SPECIALIZED_SELECTOR):
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        name = str(meta.get("name", ""))
        function_name = (meta.get("labels") or {}).get(LABEL_SPECIALIZED_FOR)
        function = deployment = None
        if function_name:
            function = await kube.get(
                path_for(API_VERSION, FUNCTION_PLURAL, namespace, function_name)
            )
            deployment = await kube.get(
                path_for("apps/v1", "deployments", namespace, function_name)
            )
        reason = sweep_reason(
            pod, function, deployment, now, state.config.warm_pool_specialized_seconds
        )
        if reason is not None:
            await delete_pod(kube, namespace, name)
            log.info("deleted specialized pool pod %s/%s: %s", namespace, name, reason)
            swept.append(name)
    return swept


async def keep_pools(state: OperatorState) -> None:
    """Until cancelled (the operator's cleanup): apply, sweep, repeat. A failure in one
    namespace is logged and retried on the next pass; it never stops the others."""
    pools = state.config.warm_pools
    last_applied: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    while True:
        for namespace in sorted(pools.sizes):
            shape = pools.shape(namespace)
            if shape is None:
                continue
            try:
                if loop.time() - last_applied.get(namespace, -REAPPLY_SECONDS) >= REAPPLY_SECONDS:
                    await apply_pool(state, namespace, shape)
                    last_applied[namespace] = loop.time()
                await sweep(state, namespace, datetime.datetime.now(datetime.UTC))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the API refused or went away: next pass
                log.warning("warm pool of %s: %s: %s", namespace, type(error).__name__, error)
        await asyncio.sleep(SWEEP_SECONDS)


def start_warm_pools(state: OperatorState) -> None:
    """At start-up, when the chart names pooled namespaces."""
    if state.config.warm_pools.enabled:
        state.background.append(asyncio.ensure_future(keep_pools(state)))
