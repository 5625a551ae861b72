"""Kubernetes object Triggers (``spec.kubernetes``) at the gateway: the cluster's own events
as Event invocations of the Trigger's Function.

The gateway already lists and watches the API; here it also watches the objects that
kubernetes Triggers name, one watch per (apiVersion, kind, namespace) however many
Triggers share it, each Trigger filtering by its labels and event types. Each matching
event is stored in JetStream through the async intake, keyed for de-duplication by
``k8s/<trigger ns>/<trigger>/<uid>/<resourceVersion>/<type>``: several gateway replicas
watch the same objects, and a relist after a lost position (410) finds the same versions
again; the key keeps each event once within the idempotency window. Delivery, retries and
onFailure are then the async path's.

Only kinds in the chart's ``gateway.watchableKinds`` (``HANSHU_WATCHABLE_KINDS``) are
watched: the gateway is granted read on those only. The first list of a watch is its
baseline, not events: a gateway that restarts does not replay every object as ADDED.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hanshu_api.event_sources import (
    KubernetesSource,
    WatchableKind,
    not_watchable_message,
)
from hanshu_api.gateway_paths import REPLICA_INVOKE_PATH
from hanshu_api.invocations import EVENT, Origin, StoredRequest, route_scope
from hanshu_api.platform import FunctionKey
from prometheus_client import Counter

from .async_intake import AsyncIntake, AsyncUnavailable, Call
from .catalog import Catalog

log = logging.getLogger("hanshu.gateway")

KUBE_EVENTS = Counter(
    "hanshu_gateway_kubernetes_events",
    "Kubernetes object events for kubernetes Triggers, by Trigger and outcome: stored (an "
    "Event invocation), dropped (no Function, no NATS, or the queue was full).",
    ["namespace", "trigger", "outcome"],
)
# Events waiting for JetStream (while it is away): beyond this, new ones are dropped.
MAX_PENDING_EVENTS = 10_000
RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 10.0
EVENT_SOURCE = "hanshu.kubernetes"

TriggerKey = tuple[str, str]
Handler = Callable[[str, Mapping[str, Any]], None]
Replacer = Callable[[list[dict[str, Any]]], Awaitable[None]]
# Runs one watch of (apiVersion, resource, namespace) until cancelled: KubeGateway._follow.
Follow = Callable[[str, str, str, Handler, Replacer], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class WatchTarget:
    """What one shared watch reads: the objects of one resource in one namespace."""

    api_version: str
    resource: str
    namespace: str


@dataclass(frozen=True, slots=True)
class ObjectTrigger:
    namespace: str
    name: str
    function: str
    source: KubernetesSource

    @property
    def key(self) -> TriggerKey:
        return (self.namespace, self.name)


def dedup_key(trigger: TriggerKey, obj: Mapping[str, Any], event_type: str) -> str:
    meta = obj.get("metadata") or {}
    uid = meta.get("uid") or f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    return f"k8s/{trigger[0]}/{trigger[1]}/{uid}/{meta.get('resourceVersion', '')}/{event_type}"


def event_body(trigger: ObjectTrigger, event_type: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the Function receives: CloudEvents' attributes (lower-case, as in JSON) and the
    object as the API server sent it."""
    meta = obj.get("metadata") or {}
    source = trigger.source
    return {
        "specversion": "1.0",
        "id": f"{meta.get('uid', '')}/{meta.get('resourceVersion', '')}/{event_type}",
        "source": f"{EVENT_SOURCE}/{source.api_version}/{source.kind}/{trigger.namespace}",
        "type": f"{EVENT_SOURCE}.{event_type.lower()}",
        "subject": str(meta.get("name", "")),
        "eventType": event_type,
        "apiVersion": source.api_version,
        "kind": source.kind,
        "namespace": trigger.namespace,
        "triggerName": trigger.name,
        "object": obj,
    }


def relist_events(
    known: Mapping[str, Mapping[str, Any]], items: Iterable[Mapping[str, Any]]
) -> list[tuple[str, Mapping[str, Any]]]:
    """What changed while the watch had no position: new objects (ADDED), other versions
    (MODIFIED), objects gone (DELETED, with their last known state). Objects seen at the
    same resourceVersion are not events."""
    events: list[tuple[str, Mapping[str, Any]]] = []
    listed: set[str] = set()
    for item in items:
        uid = _uid(item)
        listed.add(uid)
        before = known.get(uid)
        if before is None:
            events.append(("ADDED", item))
        elif _version(before) != _version(item):
            events.append(("MODIFIED", item))
    events += [("DELETED", obj) for uid, obj in known.items() if uid not in listed]
    return events


def _uid(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace', '')}/{meta.get('name', '')}")


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


@dataclass
class _Watch:
    task: asyncio.Task[None] | None = None
    triggers: dict[TriggerKey, ObjectTrigger] = field(default_factory=dict)
    known: dict[str, Mapping[str, Any]] | None = None  # None: not listed yet


@dataclass(frozen=True, slots=True)
class _Pending:
    trigger: ObjectTrigger
    event_type: str
    obj: Mapping[str, Any]


class ObjectWatches:
    """The kubernetes Triggers' watches: started with a kind's first Trigger, stopped with
    its last; events queued in order and stored one by one (again while NATS is away)."""

    def __init__(
        self,
        allowed: Mapping[tuple[str, str], WatchableKind],
        follow: Follow,
        catalog: Catalog,
        intake: Callable[[], AsyncIntake | None],
    ) -> None:
        self.allowed = allowed
        self._follow = follow
        self._catalog = catalog
        self._intake = intake
        self._triggers: dict[TriggerKey, WatchTarget | None] = {}
        self._watches: dict[WatchTarget, _Watch] = {}
        self._pending: asyncio.Queue[_Pending] = asyncio.Queue(MAX_PENDING_EVENTS)
        self._sender: asyncio.Task[None] | None = None

    def target_of(self, trigger: ObjectTrigger) -> WatchTarget | None:
        allowed = self.allowed.get(trigger.source.kind_key)
        if allowed is None:
            return None
        return WatchTarget(allowed.api_version, allowed.resource, trigger.namespace)

    @property
    def targets(self) -> set[WatchTarget]:
        return set(self._watches)

    def listed(self, target: WatchTarget) -> bool:
        """The watch of ``target`` has its baseline: events from now on are delivered."""
        watch = self._watches.get(target)
        return watch is not None and watch.known is not None

    def put(self, key: TriggerKey, trigger: ObjectTrigger | None) -> None:
        """A Trigger as it is now (None: gone, or not a kubernetes Trigger any more)."""
        target = self.target_of(trigger) if trigger is not None else None
        unchanged = key in self._triggers and self._triggers[key] == target
        if trigger is None or not unchanged:
            # Changed what it watches: the old watch goes if nobody else reads it. One that
            # stays the same is kept, position and all.
            self._drop(key)
        if trigger is None:
            return
        self._triggers[key] = target
        if target is None:
            if not unchanged:  # once, not at every change of the Trigger
                log.warning(
                    "not watching for Trigger %s/%s: %s",
                    *key,
                    not_watchable_message(trigger.source),
                )
            return
        watch = self._watches.get(target)
        if watch is None:
            watch = self._start(target)
        watch.triggers[key] = trigger

    def load(self, namespace: str, triggers: Iterable[ObjectTrigger]) -> None:
        """Every kubernetes Trigger of one watched namespace ("": all), after a list."""
        fresh = {t.key: t for t in triggers}
        for key in [k for k in self._triggers if not namespace or k[0] == namespace]:
            if key not in fresh:
                self.put(key, None)
        for key, trigger in fresh.items():
            self.put(key, trigger)

    def _drop(self, key: TriggerKey) -> None:
        target = self._triggers.pop(key, None)
        watch = self._watches.get(target) if target is not None else None
        if watch is None:
            return
        watch.triggers.pop(key, None)
        if not watch.triggers:
            if watch.task is not None:
                watch.task.cancel()
            del self._watches[target]  # type: ignore[arg-type]

    def _start(self, target: WatchTarget) -> _Watch:
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send_all())
        watch = _Watch()

        def on_event(event_type: str, obj: Mapping[str, Any]) -> None:
            if watch.known is None:
                return
            uid = _uid(obj)
            if event_type == "DELETED":
                watch.known.pop(uid, None)
            else:
                watch.known[uid] = obj
            self._queue(watch, event_type, obj)

        async def on_list(items: list[dict[str, Any]]) -> None:
            known: dict[str, Mapping[str, Any]] = {_uid(item): item for item in items}
            if watch.known is not None:  # a relist: what changed meanwhile
                for event_type, obj in relist_events(watch.known, items):
                    self._queue(watch, event_type, obj)
            watch.known = known

        watch.task = asyncio.ensure_future(
            self._follow(target.api_version, target.resource, target.namespace, on_event, on_list)
        )
        self._watches[target] = watch
        log.info(
            "watching %s %s in %s for kubernetes Triggers",
            target.api_version,
            target.resource,
            target.namespace,
        )
        return watch

    def _queue(self, watch: _Watch, event_type: str, obj: Mapping[str, Any]) -> None:
        labels = (obj.get("metadata") or {}).get("labels")
        for trigger in watch.triggers.values():
            if not trigger.source.selects(event_type, labels):
                continue
            try:
                self._pending.put_nowait(_Pending(trigger, event_type, obj))
            except asyncio.QueueFull:
                KUBE_EVENTS.labels(trigger.namespace, trigger.name, "dropped").inc()
                log.error(
                    "dropped a %s event for Trigger %s/%s: %d events wait for NATS",
                    event_type,
                    *trigger.key,
                    MAX_PENDING_EVENTS,
                )

    async def _send_all(self) -> None:
        while True:
            pending = await self._pending.get()
            for attempt in itertools.count():
                if await self._send(pending):
                    break
                # JetStream is away: the same event again, in order, until it is back.
                await asyncio.sleep(min(MAX_RETRY_SECONDS, RETRY_SECONDS * 2**attempt))

    async def _send(self, pending: _Pending) -> bool:
        """Store one event; False when JetStream is away (it is tried again)."""
        trigger = pending.trigger
        key: FunctionKey = (trigger.namespace, trigger.function)
        entry = self._catalog.functions.get(key)
        intake = self._intake()
        if entry is None or intake is None:
            KUBE_EVENTS.labels(trigger.namespace, trigger.name, "dropped").inc()
            log.warning(
                "dropped a %s event for Trigger %s/%s: %s",
                pending.event_type,
                *trigger.key,
                f"no Function {key[1]}" if entry is None else "async invocation needs NATS",
            )
            return True
        call = Call(
            key=key,
            origin=Origin(key[0], key[1], trigger.name),
            policy=entry.async_policy,
            timeout_seconds=entry.timeout_seconds,
            request=StoredRequest(
                "POST", REPLICA_INVOKE_PATH, (("Content-Type", "application/json"),)
            ),
            body=json.dumps(event_body(trigger, pending.event_type, pending.obj)).encode(),
            idempotency_scope=route_scope(trigger.namespace, trigger.name, None),
        )
        try:
            await intake.enqueue(
                call, dedup_key(trigger.key, pending.obj, pending.event_type), EVENT
            )
        except AsyncUnavailable as why:
            log.warning("a kubernetes event for %s/%s waits for NATS: %s", *trigger.key, why)
            return False
        KUBE_EVENTS.labels(trigger.namespace, trigger.name, "stored").inc()
        return True

    async def stop(self) -> None:
        tasks = [w.task for w in self._watches.values() if w.task is not None]
        if self._sender is not None:
            tasks.append(self._sender)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watches.clear()
