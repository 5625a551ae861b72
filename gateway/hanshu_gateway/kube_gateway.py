"""The gateway in a cluster: Triggers, Functions and EndpointSlices from the Kubernetes API,
and the API-key verifiers the operator publishes as Secrets in the gateway's own namespace.

Each kind is listed once, then watched; a watch that ends, or goes silent, resumes from the
last resourceVersion seen (an event's or a bookmark's). Only the API server saying the
position is gone (410) makes the gateway list again, as client-go's reflector does.

Cost: a list grows with its objects, read in pages and handed over in slices that give
the loop back (Triggers judged in one pass, see ``catalog``); an event costs its own
object, its Function's few EndpointSlices, or its Trigger's route: never a pass over
every object of its kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import os
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hanshu_api import API_VERSION, FUNCTION_PLURAL, LABEL_FUNCTION, TRIGGER_PLURAL
from hanshu_api.api_keys import SELECTOR, KeyVerifiers, read_published
from hanshu_api.conditions import replica_fault
from hanshu_api.event_sources import WatchableKind, watchable_kinds_from_env
from hanshu_api.kube import ApiError, KubeClient, WatchIdle, load_config, path_for
from hanshu_api.loop_lag import Slices, collector_paused
from hanshu_api.models import SpecInvalid, parse_function_spec, parse_trigger_spec
from hanshu_api.platform import Endpoint, FunctionKey
from hanshu_api.pool_settings import WarmPoolSettings
from hanshu_api.settings import FunctionDefaults, names, seconds, text
from hanshu_api.versions import FUNCTION_VERSION_PLURAL, version_key
from hanshu_api.warm_pool import LABEL_POOL

from .catalog import Catalog, Conflict, KnownTrigger
from .kube_pool import KubeWarmPool
from .object_watch import ObjectTrigger, ObjectWatches
from .pipeline import Gateway, GatewayConfig, config_from_env
from .versions_seam import function_routing, parse_function_version

log = logging.getLogger("hanshu.gateway")

# Asked of the server per watch, spread over [300, 600) s as client-go's reflector does, so
# that many gateways do not all reconnect at once.
WATCH_TIMEOUT_SECONDS = 300
# The API server sends a bookmark about every minute on a watch with a timeout: two
# minutes of nothing at all means the connection is dead (resuming costs little if not).
DEFAULT_WATCH_IDLE_SECONDS = 120.0
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
Handler = Callable[[str, Mapping[str, Any]], None]
# Takes a whole list at once, where judging item by item would cost more (Triggers).
Replacer = Callable[[list[dict[str, Any]]], Awaitable[None]]


class WatchEnd(enum.Enum):
    CLOSED = "closed"  # the server ended the stream (timeoutSeconds): the position holds
    IDLE = "idle"  # nothing arrived within the idle bound: the position holds
    GONE = "gone"  # 410: the position is older than the server's history
    BROKEN = "broken"  # refused, torn, or an error: the position still holds


@dataclass(frozen=True, slots=True)
class WatchOutcome:
    ended: WatchEnd
    version: str | None  # the last resourceVersion seen: a list's, an event's, a bookmark's
    progressed: bool  # an event or a bookmark arrived


@dataclass(frozen=True, slots=True)
class NextWatch:
    relist: bool
    delay: float
    failures: int  # attempts in a row that ended early with nothing


def next_watch(outcome: WatchOutcome, failures: int) -> NextWatch:
    """Resume from the last version seen unless the server said it is gone (or there is
    none yet); reconnect at once after a stream that delivered or idled out, and back off
    exponentially while attempts keep ending early with nothing."""
    relist = outcome.ended is WatchEnd.GONE or not outcome.version
    if outcome.progressed or outcome.ended is WatchEnd.IDLE:
        return NextWatch(relist, 0.0, 0)
    failures += 1
    return NextWatch(
        relist, min(MAX_BACKOFF_SECONDS, BACKOFF_SECONDS * 2 ** (failures - 1)), failures
    )


def watch_timeout_seconds(jitter: float) -> int:
    """The server-side timeout of one watch, ``jitter`` in [0, 1)."""
    return int(WATCH_TIMEOUT_SECONDS * (1.0 + jitter))


def _resource_version(obj: Mapping[str, Any]) -> str | None:
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return str(version) if version else None


def _known_trigger(obj: Mapping[str, Any]) -> KnownTrigger | None:
    """A Trigger as the catalog takes it; None (and a line in the log) when its spec is
    invalid: the operator reports that on the Trigger."""
    key = _key(obj)
    try:
        spec = parse_trigger_spec(obj.get("spec") or {}, key[0])
    except SpecInvalid as error:
        log.warning("ignoring Trigger %s/%s: %s", *key, error)
        return None
    return KnownTrigger(*key, (obj.get("metadata") or {}).get("creationTimestamp"), spec)


def _object_trigger(known: KnownTrigger | None) -> ObjectTrigger | None:
    if known is None or known.spec.kubernetes is None:
        return None
    return ObjectTrigger(
        known.namespace, known.name, known.spec.function_name, known.spec.kubernetes
    )


def _key(obj: Mapping[str, Any]) -> FunctionKey:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


@dataclass(frozen=True, slots=True)
class SliceEndpoints:
    ready: list[Endpoint]
    starting: list[Endpoint]  # not ready yet and not terminating: the gateway may probe them


def slice_endpoints(endpoint_slice: Mapping[str, Any]) -> SliceEndpoints:
    """A slice's endpoints on its port named 'http': the ready ones, and the ones not ready
    yet. A terminating endpoint is neither: a draining pod finishes its requests but takes
    no new ones, whatever it would answer."""
    port = next(
        (p.get("port") for p in endpoint_slice.get("ports") or [] if p.get("name") == "http"), None
    )
    found = SliceEndpoints([], [])
    if port is None:
        return found
    for endpoint in endpoint_slice.get("endpoints") or []:
        conditions = endpoint.get("conditions") or {}
        if conditions.get("terminating") is True:
            continue
        into = found.starting if conditions.get("ready", True) is False else found.ready
        into += [Endpoint(address, int(port)) for address in endpoint.get("addresses") or []]
    return found


# -- settings from the environment (each bad value: a ConfigError naming its variable) -----


def watch_idle_seconds_from_env(env: Mapping[str, str]) -> float:
    return seconds(env, "HANSHU_WATCH_IDLE_SECONDS", DEFAULT_WATCH_IDLE_SECONDS)


def default_resources_from_env(env: Mapping[str, str]) -> Mapping[str, Any]:
    """The chart's functionDefaults.resources, by the operator's rule: what a Function
    without its own resources really gets, and so what it is metered for."""
    return FunctionDefaults.from_env(env).resources


@dataclass
class _Cursor:
    """Where one watch is: the version to resume from, and the objects it has seen."""

    version: str | None = None
    seen: set[FunctionKey] = field(default_factory=set)


class KubeGateway:
    def __init__(
        self,
        config: GatewayConfig,
        kube: KubeClient,
        namespaces: tuple[str, ...] = (),
        *,
        gateway_namespace: str | None = None,
        idle_seconds: float = DEFAULT_WATCH_IDLE_SECONDS,
        default_resources: Mapping[str, Any] | None = None,
        watchable_kinds: Mapping[tuple[str, str], WatchableKind] | None = None,
        warm_pools: WarmPoolSettings | None = None,
        function_region: str = "",
    ) -> None:
        self.kube = kube
        self.namespaces = namespaces or ("",)
        # Published verifiers live here, and the gateway reads Secrets nowhere else.
        self.gateway_namespace = gateway_namespace or kube.config.namespace
        self.idle_seconds = idle_seconds
        self.catalog = Catalog(config.queue_limit, self.key_verifiers, default_resources or {})
        # The chart's warmPool: pool pods claimed and specialized for cold Functions.
        self.warm_pool = (
            KubeWarmPool(
                kube,
                warm_pools,
                config.internal_token,
                default_resources or {},
                region=function_region,
            )
            if warm_pools is not None and warm_pools.enabled
            else None
        )
        self.gateway = Gateway(config, self.catalog, warm_pool=self.warm_pool)
        self._conflicts: list[Conflict] = []
        # EndpointSlices by name, and each Function's slices: a slice's event re-reads
        # its own Function's few slices, never every slice in the cluster.
        self._slice_owner: dict[FunctionKey, FunctionKey] = {}
        self._slices_of: dict[FunctionKey, dict[FunctionKey, SliceEndpoints]] = {}
        # Published verifier Secret -> the Trigger it verifies; Trigger -> its verifiers.
        self._published: dict[FunctionKey, tuple[str, str]] = {}
        self._verifiers: dict[tuple[str, str], KeyVerifiers] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._listed: set[tuple[str, str | None]] = set()
        # The watches that must have listed before the gateway is synced: not the object
        # watches of kubernetes Triggers, which come and go with them.
        self._core: set[tuple[str, str | None]] = set()
        self.objects = ObjectWatches(
            watchable_kinds or {},
            self._follow_objects,
            self.catalog,
            lambda: self.gateway.intake,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> KubeGateway:
        """Raises ConfigError naming the variable when one is malformed."""
        namespaces = names(env, "HANSHU_WATCH_NAMESPACES")
        idle_seconds = watch_idle_seconds_from_env(env)
        default_resources = default_resources_from_env(env)
        watchable_kinds = watchable_kinds_from_env(env)
        config = config_from_env(env)
        # The image only matters to the operator; the gateway judges by namespaces and size.
        warm_pools = WarmPoolSettings.from_env(env, default_image="")
        return cls(
            config,
            KubeClient(load_config(env)),
            namespaces,
            gateway_namespace=text(env, "HANSHU_GATEWAY_NAMESPACE") or None,
            idle_seconds=idle_seconds,
            default_resources=default_resources,
            watchable_kinds=watchable_kinds,
            warm_pools=warm_pools,
            function_region=text(env, "HANSHU_FUNCTION_REGION"),
        )

    def key_verifiers(self, namespace: str, trigger: str) -> KeyVerifiers | None:
        return self._verifiers.get((namespace, trigger))

    # -- what the watches feed ------------------------------------------------------------

    def on_trigger(self, kind: str, obj: Mapping[str, Any]) -> None:
        """One Trigger's event: only the claims on its own routes are judged again."""
        key = _key(obj)
        known = None if kind == "DELETED" else _known_trigger(obj)
        if known is None:
            refused = self.catalog.remove_trigger(key)
        else:
            refused = self.catalog.put_trigger(known)
        self._log_refused(refused)
        self.objects.put(key, _object_trigger(known))

    async def replace_triggers(self, namespace: str, items: list[dict[str, Any]]) -> None:
        """A full list of one watched namespace's Triggers ("": every namespace), at
        start-up or after the watch's position was lost:
        parsed in slices that give the loop back, then judged in one pass over the claims,
        grouped by route. The routes change at once, so none is served by a wrong owner
        while the list loads (the old table serves meanwhile; none before the first)."""
        known: list[KnownTrigger] = []
        slices = Slices()
        for item in items:
            trigger = _known_trigger(item)
            if trigger is not None:
                known.append(trigger)
            await slices.pause()
        self.objects.load(namespace, [o for t in known if (o := _object_trigger(t)) is not None])
        if namespace:  # the other watched namespaces' Triggers stay as they are
            known += [t for t in self.catalog.known_triggers() if t.namespace != namespace]
        conflicts = await self.catalog.load_triggers(known)
        seen = {(loser.key, owner.key) for loser, owner in self._conflicts}
        self._log_refused([c for c in conflicts if (c[0].key, c[1].key) not in seen])
        self._conflicts = conflicts

    def _log_refused(self, refused: list[Conflict]) -> None:
        for loser, owner in refused:  # once per conflict that appeared, not per event
            log.warning(
                "not serving Trigger %s/%s: the route %s belongs to Trigger %s/%s",
                loser.namespace,
                loser.name,
                loser.describe(),
                owner.namespace,
                owner.name,
            )

    def on_function(self, kind: str, obj: Mapping[str, Any]) -> None:
        key = _key(obj)
        if self.warm_pool is not None:
            self.warm_pool.on_function(kind, obj)
        spec = None
        if kind != "DELETED":
            with contextlib.suppress(SpecInvalid):
                spec = parse_function_spec(obj.get("spec") or {})
        if spec is None:
            self._forget_function(key)
            self.catalog.set_aliases(key, {})
            return
        known = key in self.catalog.functions
        # The operator writes why replicas cannot start into the status, which this watch
        # already brings: no pod or event reading, and no RBAC, of the gateway's own.
        self.catalog.set_function(key, spec, replica_fault(obj))
        # Its aliases as they route now: the spec's, or a canary's status entries.
        self.catalog.set_aliases(key, function_routing(spec.aliases, obj))
        if not known:  # its starting replicas may have been seen before it
            self._publish_starting(key)

    def _forget_function(self, key: FunctionKey) -> None:
        gone = self.catalog.functions.get(key)
        if gone is not None:
            gone.pool.close()
        self.catalog.set_function(key, None)

    def on_function_version(self, kind: str, obj: Mapping[str, Any]) -> None:
        """A published version: an entry of its own under its version_key, with its
        template's limits; its replicas are the EndpointSlices labelled with that key."""
        published = None if kind == "DELETED" else parse_function_version(obj)
        spec = None
        if published is not None:
            try:
                spec = parse_function_spec(published.template)
            except SpecInvalid as error:
                log.warning("ignoring FunctionVersion %s/%s: %s", *_key(obj), error)
        if published is None or spec is None:
            # A FunctionVersion is named by its version_key (a deleted one, relisted, may
            # carry only its metadata).
            self._forget_function(_key(obj))
            return
        key = (published.namespace, version_key(published.function, published.version))
        known = key in self.catalog.functions
        self.catalog.set_function(key, spec, version_of=(published.function, published.version))
        if not known:
            self._publish_starting(key)

    def on_endpoint_slice(self, kind: str, obj: Mapping[str, Any]) -> None:
        slice_key = _key(obj)
        function = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_FUNCTION)
        before = self._slice_owner.pop(slice_key, None)
        if before is not None:
            owned = self._slices_of.get(before, {})
            owned.pop(slice_key, None)
            if not owned:
                self._slices_of.pop(before, None)
        affected = {before} if before is not None else set()
        if kind != "DELETED" and function:
            owner = (slice_key[0], function)
            self._slice_owner[slice_key] = owner
            self._slices_of.setdefault(owner, {})[slice_key] = slice_endpoints(obj)
            affected.add(owner)
        for key in affected:  # a Function's own slices only: a few, whatever the cluster
            slices = self._slices_of.get(key, {}).values()
            self.catalog.set_endpoints(key, [e for found in slices for e in found.ready])
            self._publish_starting(key)

    def _publish_starting(self, key: FunctionKey) -> None:
        """The not-ready replicas go to the pool directly: the catalog's seam carries ready
        ones only, and these must never be taken for ready without the pool's own probe."""
        entry = self.catalog.functions.get(key)
        if entry is not None:
            slices = self._slices_of.get(key, {}).values()
            entry.pool.set_starting([e for found in slices for e in found.starting])

    def on_key_secret(self, kind: str, obj: Mapping[str, Any]) -> None:
        """A published verifier Secret: a changed one takes effect on its event, so a key
        rotation reaches the gateway within seconds."""
        secret = _key(obj)
        published = None if kind == "DELETED" else read_published(obj)
        before = self._published.pop(secret, None)
        if before is not None:
            self._verifiers.pop(before, None)
        if published is not None:
            self._published[secret] = published[0]
            self._verifiers[published[0]] = published[1]

    # -- watching -------------------------------------------------------------------------

    async def _follow_objects(
        self, api_version: str, plural: str, namespace: str, handle: Handler, replace: Replacer
    ) -> None:
        await self._follow(api_version, plural, namespace, handle, replace=replace)

    def _core_watch(
        self,
        api_version: str,
        plural: str,
        namespace: str,
        handle: Handler,
        label_selector: str | None = None,
        replace: Replacer | None = None,
    ) -> Awaitable[None]:
        self._core.add((path_for(api_version, plural, namespace or None), label_selector))
        return self._follow(api_version, plural, namespace, handle, label_selector, replace)

    async def _follow(
        self,
        api_version: str,
        plural: str,
        namespace: str,
        handle: Handler,
        label_selector: str | None = None,
        replace: Replacer | None = None,
    ) -> None:
        path = path_for(api_version, plural, namespace or None)
        cursor = _Cursor()
        failures = 0
        while True:
            outcome = await self._watch_once(path, plural, cursor, handle, label_selector, replace)
            step = next_watch(outcome, failures)
            failures = step.failures
            if step.relist:
                cursor.version = None
            if step.delay:
                await asyncio.sleep(step.delay)

    async def _relist(
        self,
        path: str,
        cursor: _Cursor,
        handle: Handler,
        label_selector: str | None,
        replace: Replacer | None,
    ) -> None:
        """List, then hand the items over in slices that give the loop back: 10,000
        objects never hold requests, watches and probes for more than a slice."""
        with collector_paused():
            items, version = await self.kube.list_with_version(path, label_selector)
            current = {_key(item) for item in items}
            if replace is not None:
                await replace(items)
            else:
                slices = Slices()
                for gone in cursor.seen - current:  # deleted while nobody watched
                    handle("DELETED", {"metadata": {"namespace": gone[0], "name": gone[1]}})
                for item in items:
                    handle("ADDED", item)
                    await slices.pause()
        cursor.seen, cursor.version = current, version
        self._listed.add((path, label_selector))

    async def _watch_once(
        self,
        path: str,
        plural: str,
        cursor: _Cursor,
        handle: Handler,
        label_selector: str | None,
        replace: Replacer | None = None,
    ) -> WatchOutcome:
        """One list (when there is no position) and one watch, until it ends."""
        progressed = False
        # A watch that (re)connects may bring thousands of events at once, all buffered:
        # reading them never waits, so the loop is given back between slices of them.
        slices = Slices()
        try:
            if cursor.version is None:
                await self._relist(path, cursor, handle, label_selector, replace)
            async for event in self.kube.watch(
                path,
                label_selector,
                cursor.version,
                timeout_seconds=watch_timeout_seconds(random.random()),  # noqa: S311
                idle_timeout=self.idle_seconds,
            ):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    log.info("watching %s: %s", plural, obj.get("message", obj))
                    ended = WatchEnd.GONE if obj.get("code") == 410 else WatchEnd.BROKEN
                    return WatchOutcome(ended, cursor.version, progressed)
                progressed = True
                cursor.version = _resource_version(obj) or cursor.version
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    handle(kind, obj)
                    (cursor.seen.discard if kind == "DELETED" else cursor.seen.add)(_key(obj))
                    await slices.pause()
            return WatchOutcome(WatchEnd.CLOSED, cursor.version, progressed)
        except WatchIdle as idle:
            log.info("%s; resuming from %s", idle, cursor.version)
            return WatchOutcome(WatchEnd.IDLE, cursor.version, progressed)
        except ApiError as error:
            log.warning("watching %s: %s", plural, error)
            ended = WatchEnd.GONE if error.status == 410 else WatchEnd.BROKEN
            return WatchOutcome(ended, cursor.version, progressed)
        except Exception as error:  # refused, reset, torn JSON: the position still holds
            log.warning("watching %s broke (%s: %s)", plural, type(error).__name__, error)
            return WatchOutcome(WatchEnd.BROKEN, cursor.version, progressed)

    def _watches(self) -> list[Awaitable[None]]:
        watches: list[Awaitable[None]] = [
            self._core_watch(
                "v1",
                "secrets",
                self.gateway_namespace,
                self.on_key_secret,
                label_selector=SELECTOR,
            )
        ]
        for namespace in self.namespaces:
            watches += [
                self._core_watch(
                    API_VERSION,
                    TRIGGER_PLURAL,
                    namespace,
                    self.on_trigger,
                    replace=functools.partial(self.replace_triggers, namespace),
                ),
                self._core_watch(API_VERSION, FUNCTION_PLURAL, namespace, self.on_function),
                self._core_watch(
                    API_VERSION, FUNCTION_VERSION_PLURAL, namespace, self.on_function_version
                ),
                self._core_watch(
                    "discovery.k8s.io/v1",
                    "endpointslices",
                    namespace,
                    self.on_endpoint_slice,
                    label_selector=LABEL_FUNCTION,
                ),
            ]
        if self.warm_pool is not None:  # not core: routes serve without the pool known
            watches += [
                self._follow("v1", "pods", namespace, self.warm_pool.on_pod, LABEL_POOL)
                for namespace in self.warm_pool.namespaces
            ]
        return watches

    def synced(self) -> bool:
        """Every watch has listed once: routes, Functions, replicas and keys are known."""
        return self._core <= self._listed

    async def start(self) -> None:
        watches = self._watches()
        self.gateway.routes_synced = self.synced
        await self.gateway.start()
        self._tasks = [asyncio.ensure_future(watch) for watch in watches]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.objects.stop()
        if self.warm_pool is not None:
            await self.warm_pool.close()
        await self.gateway.close()
        await self.kube.close()
