"""The warm pool in a cluster (``hanshu_api.platform.WarmPool``): the operator keeps a
``hanshu-pool`` Deployment of generic runtime pods in each pooled namespace; this claims
one for a cold Function and specializes it.

Claiming is a merge patch of the pod's labels with its ``metadata.resourceVersion`` as
precondition: of two gateways racing for one pod, the API server lets one write and
answers the other 409, which then tries its next pod. The claimed pod leaves the pool's
ReplicaSet (its selector wants ``pool-state=available``), which starts a replacement,
and gains the Function as owner, so deleting the Function deletes it.

The pod is then sent the Function's code and environment (``SpecializeRequest``, built by
``specialize_env``, the one builder) on its admin port with the namespace's pool token.
A pod that refuses, fails or does not answer in time is deleted and the next tried; with
none left the request takes the ordinary path (``specialize`` returns None, never raises).

Cost: per pooled namespace, one watch of its pool pods (by label); per Function of those
namespaces, its parsed spec (the Function watch already brings it).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from hanshu_api import ADMIN_PORT, API_VERSION, FUNCTION_PORT
from hanshu_api.kube import ApiError, KubeClient, path_for
from hanshu_api.models import FunctionSpec, SpecInvalid, parse_function_spec
from hanshu_api.platform import Endpoint, FunctionKey
from hanshu_api.pool_settings import WarmPoolSettings
from hanshu_api.warm_pool import (
    ANNOTATION_SPECIALIZED_AT,
    LABEL_POOL,
    LABEL_POOL_STATE,
    LABEL_SPECIALIZED_FOR,
    POOL_STATE_AVAILABLE,
    POOL_STATE_SPECIALIZED,
    SPECIALIZE_PATH,
    PoolEligibility,
    SpecializeRequest,
    pool_eligibility,
    pool_token,
    specialize_env,
)
from prometheus_client import Counter, Gauge

log = logging.getLogger("hanshu.gateway.pool")

# Where a pool pod writes the code it is given: /tmp is its only writable folder.
POOL_CODE_DIR = "/tmp/code"  # noqa: S108 - the pod's own emptyDir
# The specialize call writes a few files and imports one handler: seconds mean trouble,
# and the request waiting for it has its own pod starting meanwhile.
SPECIALIZE_TIMEOUT_SECONDS = 5.0
# Deleting a retired pod: its requests in flight finish within this.
RETIRE_GRACE_SECONDS = 30
CONFLICT = 409
NOT_FOUND = 404

POOL_SIZE = Gauge(
    "hanshu_gateway_pool_size", "Pool pods the chart keeps in the namespace.", ["namespace"]
)
POOL_AVAILABLE = Gauge(
    "hanshu_gateway_pool_available_pods",
    "Ready pool pods this gateway may claim now.",
    ["namespace"],
)
POOL_CLAIMS = Counter(
    "hanshu_gateway_pool_claims",
    "Pool pods this gateway tried to specialize, by outcome: specialized, lost (another "
    "gateway claimed it first), failed (it did not specialize and was deleted).",
    ["namespace", "outcome"],
)


@dataclass(frozen=True, slots=True)
class PoolPod:
    """An available pool pod, as its last watch event showed it."""

    namespace: str
    name: str
    address: str
    resource_version: str
    function_port: int
    admin_port: int


@dataclass(frozen=True, slots=True)
class PooledFunction:
    spec: FunctionSpec
    uid: str
    generation: int


def _container_port(pod: Mapping[str, Any], name: str, default: int) -> int:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == name and isinstance(port.get("containerPort"), int):
                return int(port["containerPort"])
    return default


def _is_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _made_by_pool(meta: Mapping[str, Any], pool: str) -> bool:
    """Whether the pool's own ReplicaSet (``<pool>-<hash>``) controls the pod: labels alone
    are not enough, since anyone who may create pods in the namespace may copy them, and
    a claimed pod is handed the namespace's pool token, a Function's code and its
    requests."""
    return bool(pool) and any(
        owner.get("controller")
        and owner.get("kind") == "ReplicaSet"
        and str(owner.get("name", "")).startswith(f"{pool}-")
        for owner in meta.get("ownerReferences") or ()
    )


def available_pod(pod: Mapping[str, Any]) -> PoolPod | None:
    """The pod as one the gateway may claim: the pool's own, available, Ready, with an IP,
    not leaving."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    address = (pod.get("status") or {}).get("podIP")
    if (
        labels.get(LABEL_POOL_STATE) != POOL_STATE_AVAILABLE
        or not _made_by_pool(meta, str(labels.get(LABEL_POOL, "")))
        or meta.get("deletionTimestamp")
        or not address
        or not meta.get("resourceVersion")
        or not _is_ready(pod)
    ):
        return None
    return PoolPod(
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
        str(address),
        str(meta["resourceVersion"]),
        _container_port(pod, "http", FUNCTION_PORT),
        _container_port(pod, "admin", ADMIN_PORT),
    )


def claim_patch(pod: PoolPod, function: str, uid: str, now: datetime.datetime) -> dict[str, Any]:
    """The merge patch that claims ``pod`` for ``function``, if nobody changed it since."""
    return {
        "metadata": {
            # The precondition: a 409 if the pod changed (another gateway claimed it).
            "resourceVersion": pod.resource_version,
            "labels": {
                LABEL_POOL_STATE: POOL_STATE_SPECIALIZED,
                LABEL_SPECIALIZED_FOR: function,
            },
            "annotations": {
                ANNOTATION_SPECIALIZED_AT: now.astimezone(datetime.UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                )
            },
            # Replaces the ReplicaSet's reference (which lets the pod go anyway once the
            # labels leave its selector): the Function's deletion now deletes the pod.
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Function",
                    "name": function,
                    "uid": uid,
                    "blockOwnerDeletion": False,
                }
            ],
        }
    }


class KubeWarmPool:
    """``WarmPool`` on Kubernetes: feed it pool pod and Function events (``on_pod``,
    ``on_function``); the gateway calls ``specialize`` and ``retire``."""

    def __init__(
        self,
        kube: KubeClient,
        pools: WarmPoolSettings,
        internal_token: str,
        default_resources: Mapping[str, Any],
        *,
        specialize_timeout: float = SPECIALIZE_TIMEOUT_SECONDS,
        region: str = "",
    ) -> None:
        self.kube = kube
        self.region = region  # functionDefaults.region: HANSHU_REGION, as the operator's
        self.pools = pools
        self.internal_token = internal_token
        self.default_resources = default_resources
        self.specialize_timeout = specialize_timeout
        # Available pods by namespace, in the order they became available.
        self._available: dict[str, dict[str, PoolPod]] = {}
        # Pods this gateway is claiming right now: never tried twice at once.
        self._claiming: set[tuple[str, str]] = set()
        # The version of each pod another gateway claimed first (our patch got a 409): a
        # late or replayed watch event of that version must not offer it to us again.
        self._lost: dict[tuple[str, str], str] = {}
        self._functions: dict[FunctionKey, PooledFunction] = {}
        # Specialized pods this gateway holds, to delete when retired.
        self._specialized: dict[tuple[FunctionKey, Endpoint], str] = {}
        self._http: aiohttp.ClientSession | None = None
        for namespace, size in pools.sizes.items():
            POOL_SIZE.labels(namespace).set(size)
            POOL_AVAILABLE.labels(namespace).set(0)

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(sorted(self.pools.sizes))

    def available(self, namespace: str) -> int:
        return len(self._available.get(namespace, {}))

    # -- what the watches feed ------------------------------------------------------------

    def on_pod(self, kind: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        pods = self._available.setdefault(namespace, {})
        found = None if kind == "DELETED" else available_pod(obj)
        lost = self._lost.get((namespace, name))
        if lost is not None and (found is None or found.resource_version != lost):
            del self._lost[(namespace, name)]  # its state moved on: forget the loss
        elif found is not None and lost == found.resource_version:
            found = None  # the state we lost it in, seen again
        if found is None:
            pods.pop(name, None)
        else:
            pods[name] = found
        if namespace in self.pools.sizes:
            POOL_AVAILABLE.labels(namespace).set(len(pods))

    def on_function(self, kind: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        if key[0] not in self.pools.sizes:
            return
        spec = None
        if kind != "DELETED" and meta.get("uid"):
            with contextlib.suppress(SpecInvalid):
                spec = parse_function_spec(obj.get("spec") or {})
        if spec is None:
            self._functions.pop(key, None)
            return
        generation = meta.get("generation")
        self._functions[key] = PooledFunction(
            spec, str(meta["uid"]), generation if isinstance(generation, int) else 1
        )

    def verdict(self, key: FunctionKey) -> PoolEligibility | None:
        """Whether the pool serves this Function's cold requests; None while unknown."""
        function = self._functions.get(key)
        if function is None:
            return None
        return pool_eligibility(function.spec, self.pools.shape(key[0]), self.default_resources)

    # -- the seam ---------------------------------------------------------------------------

    async def specialize(self, key: FunctionKey) -> Endpoint | None:
        try:
            return await self._specialize(key)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # never raises: the request takes the ordinary path
            log.warning("warm pool for %s/%s: %s: %s", *key, type(error).__name__, error)
            return None

    async def _specialize(self, key: FunctionKey) -> Endpoint | None:
        namespace = key[0]
        function = self._functions.get(key)
        verdict = self.verdict(key)
        if function is None or verdict is None:
            return None
        if not verdict.eligible or not self._available.get(namespace):
            return None
        request = await self._request(key, function)
        if request is None:
            return None
        while (pod := self._next_pod(namespace)) is not None:
            self._claiming.add((namespace, pod.name))
            try:
                endpoint = await self._claim_and_specialize(pod, key, function, request)
            finally:
                self._claiming.discard((namespace, pod.name))
            if endpoint is not None:
                return endpoint
        return None

    def _next_pod(self, namespace: str) -> PoolPod | None:
        pods = self._available.get(namespace, {})
        for name, pod in pods.items():
            if (namespace, name) not in self._claiming:
                del pods[name]  # a later event of it (available again) puts it back
                POOL_AVAILABLE.labels(namespace).set(len(pods))
                return pod
        return None

    async def _request(self, key: FunctionKey, function: PooledFunction) -> bytes | None:
        """The specialize message: the code (inline, or the ConfigMap's) and the env."""
        namespace, name = key
        spec = function.spec
        files: Mapping[str, str] | None = spec.code.inline
        if files is None and spec.code.config_map:
            config_map = await self.kube.get(
                path_for("v1", "configmaps", namespace, spec.code.config_map)
            )
            files = (config_map or {}).get("data")
        if not files:
            return None  # the operator's status says the code is missing
        env = specialize_env(
            name,
            namespace,
            spec,
            generation=function.generation,
            default_resources=self.default_resources,
            code_dir=POOL_CODE_DIR,
            region=self.region or None,
        )
        return SpecializeRequest(namespace, name, function.generation, env, files).encode()

    async def _claim_and_specialize(
        self, pod: PoolPod, key: FunctionKey, function: PooledFunction, request: bytes
    ) -> Endpoint | None:
        path = path_for("v1", "pods", pod.namespace, pod.name)
        now = datetime.datetime.now(datetime.UTC)
        try:
            await self.kube.merge_patch(path, claim_patch(pod, key[1], function.uid, now))
        except ApiError as error:
            if error.status not in (CONFLICT, NOT_FOUND):
                log.warning("claiming pool pod %s/%s: %s", pod.namespace, pod.name, error)
            POOL_CLAIMS.labels(pod.namespace, "lost").inc()
            self._lost[(pod.namespace, pod.name)] = pod.resource_version
            self._available.get(pod.namespace, {}).pop(pod.name, None)
            return None  # another gateway won it, or it is gone: the next one
        problem = await self._send(pod, request)
        if problem is None:
            endpoint = Endpoint(pod.address, pod.function_port)
            self._specialized[(key, endpoint)] = pod.name
            POOL_CLAIMS.labels(pod.namespace, "specialized").inc()
            return endpoint
        POOL_CLAIMS.labels(pod.namespace, "failed").inc()
        log.warning(
            "pool pod %s/%s failed to specialize for %s (%s): deleting it",
            pod.namespace,
            pod.name,
            key[1],
            problem,
        )
        try:
            await self._delete(pod.namespace, pod.name, grace=0)
        except Exception as error:  # it stays out of the pool: the operator's sweep
            log.warning("deleting pool pod %s/%s: %s", pod.namespace, pod.name, error)
        return None

    async def _send(self, pod: PoolPod, request: bytes) -> str | None:
        """None when the pod serves the Function now, else what went wrong."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        url = f"http://{pod.address}:{pod.admin_port}{SPECIALIZE_PATH}"
        token = pool_token(self.internal_token, pod.namespace)
        try:
            async with self._http.post(
                url,
                data=request,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.specialize_timeout),
            ) as reply:
                if reply.status == 200:
                    return None
                text = (await reply.text())[:200]
                return f"answered {reply.status}: {text}"
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__

    async def retire(self, key: FunctionKey, endpoint: Endpoint) -> None:
        name = self._specialized.pop((key, endpoint), None)
        if name is None:
            return
        try:
            await self._delete(key[0], name, grace=RETIRE_GRACE_SECONDS)
        except Exception as error:  # the operator's sweep deletes it later
            log.warning("retiring pool pod %s/%s: %s", key[0], name, error)

    async def _delete(self, namespace: str, name: str, *, grace: int) -> None:
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": grace}
        try:
            await self.kube.request("DELETE", path_for("v1", "pods", namespace, name), body=options)
        except ApiError as error:
            if error.status != NOT_FOUND:
                raise

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
