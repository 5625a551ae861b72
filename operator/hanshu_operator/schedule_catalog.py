"""The operator's side of schedule Triggers: it publishes each one into the catalog bucket
in NATS (the dispatchers fire it) and writes the Trigger status from the fires bucket (the
dispatchers record each fire there), so the dispatchers need no Kubernetes API access.

Cost: one NATS connection and the set of catalog keys; a reconcile of a schedule Trigger
is one KV put (of any other Trigger, nothing: the set says it was no schedule); a fire is
one status write (and one KV get of its catalog entry, for the next fire time). At
start-up, each catalog entry of a watched namespace is checked against its Trigger once,
so a Trigger deleted while the operator was down stops firing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from typing import Any

import kopf
from hanshu_api import API_VERSION, TRIGGER_PLURAL
from hanshu_api.jetstream import (
    ScheduleBuckets,
    connect,
    ensure_schedule_buckets,
    publish_schedule,
    withdraw_schedule,
)
from hanshu_api.kube import path_for
from hanshu_api.models import SpecInvalid, parse_trigger_spec
from hanshu_api.schedules import (
    ScheduleEntry,
    ScheduleFire,
    ScheduleInvalid,
    entry_key,
    tick_text,
    trigger_of_key,
)
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KV_DEL, KV_PURGE

from .conditions import rfc3339
from .kube_events import post_event
from .state import OperatorState
from .trigger_status import write_trigger_status

log = logging.getLogger("hanshu.operator.schedules")

# How long a reconcile waits for the NATS connection before it is retried later.
CONNECT_WAIT_SECONDS = 5.0


def fire_status(
    fire: ScheduleFire, entry: ScheduleEntry | None, now: datetime.datetime
) -> dict[str, Any]:
    """The Trigger status fields of a fire (the same the operator's daemon wrote)."""
    status: dict[str, Any] = {
        "lastFireTime": tick_text(fire.tick),
        "lastFireOutcome": fire.outcome,
    }
    if entry is not None:
        status["nextFireTime"] = rfc3339(entry.next_tick(max(now, fire.tick)))
    return status


class ScheduleCatalog:
    """Publishes schedule Triggers and follows their fires; inert without a NATS URL."""

    def __init__(self, state: OperatorState) -> None:
        self.state = state
        self.url = state.config.nats_url
        self._client: NATS | None = None
        self._buckets: ScheduleBuckets | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # The catalog's keys, read once connected and kept by publish and withdraw (one
        # operator writes the catalog): a Trigger that is no schedule costs no NATS call.
        self._published: set[str] | None = None
        # Withdrawals asked for before the keys were read: done once they are.
        self._pending: set[tuple[str, str]] = set()

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def start(self) -> None:
        if self.enabled:
            self._task = asyncio.create_task(self._run())

    async def cleanup(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._client is not None:
            await self._client.close()

    async def _run(self) -> None:
        self._client = client = await connect(self.url, "hanshu-operator")
        while True:
            try:
                # One copy if the operator creates them first; the dispatchers, which
                # read HANSHU_NATS_REPLICAS, usually have.
                self._buckets = await ensure_schedule_buckets(client)
                break
            except (NatsError, TimeoutError) as error:
                log.warning("cannot set up the schedule buckets (%s); trying again", error)
                await asyncio.sleep(1.0)
        self._published = await self._keys(self._buckets)
        self._connected.set()
        log.info("schedules published to NATS at %s", self.url)
        for namespace, name in sorted(self._pending):
            with contextlib.suppress(kopf.TemporaryError):
                await self.withdraw(namespace, name)
        self._pending.clear()
        await self._forget_deleted_triggers()
        while True:
            try:
                await self._follow_fires(self._buckets)
            except (NatsError, TimeoutError) as error:
                log.warning("lost the watch on schedule fires (%s); watching again", error)
                await asyncio.sleep(1.0)

    async def _ready(self) -> ScheduleBuckets:
        """The buckets, or a TemporaryError: the reconcile is tried again later."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CONNECT_WAIT_SECONDS):
                await self._connected.wait()
        if self._buckets is None:
            raise kopf.TemporaryError(
                f"NATS at {self.url} is not reachable; the schedule is published when it is",
                delay=self.state.config.retry_delay_seconds,
            )
        return self._buckets

    async def publish(self, entry: ScheduleEntry) -> None:
        if not self.enabled:
            return  # the Served condition says why nothing fires
        buckets = await self._ready()
        try:
            await publish_schedule(buckets, entry)
        except (NatsError, TimeoutError) as error:
            raise kopf.TemporaryError(
                f"cannot publish the schedule to NATS: {error}",
                delay=self.state.config.retry_delay_seconds,
            ) from None
        if self._published is not None:
            self._published.add(entry.key)

    async def withdraw(self, namespace: str, name: str) -> None:
        """Stop the schedule of a Trigger that is gone, invalid or no longer a schedule.
        Raises TemporaryError when it is in the catalog and NATS cannot be reached."""
        if not self.enabled:
            return
        if self._published is None or self._buckets is None:
            self._pending.add((namespace, name))  # done once connected
            return
        key = entry_key(namespace, name)
        if key not in self._published:
            return  # most Triggers never were schedules
        try:
            await withdraw_schedule(self._buckets, namespace, name)
        except (NatsError, TimeoutError) as error:
            raise kopf.TemporaryError(
                f"cannot withdraw the schedule from NATS: {error}",
                delay=self.state.config.retry_delay_seconds,
            ) from None
        self._published.discard(key)
        log.info("schedule %s/%s withdrawn", namespace, name)

    async def _keys(self, buckets: ScheduleBuckets) -> set[str]:
        while True:
            try:
                return set(await buckets.catalog.keys())
            except NoKeysError:
                return set()
            except (NatsError, TimeoutError) as error:
                log.warning("cannot read the schedule catalog (%s); trying again", error)
                await asyncio.sleep(1.0)

    async def _forget_deleted_triggers(self) -> None:
        """Withdraw the entries whose Trigger went while the operator was down."""
        watched = self.state.config.namespaces
        for key in sorted(self._published or ()):
            with contextlib.suppress(ScheduleInvalid):
                namespace, name = trigger_of_key(key)
                if watched and namespace not in watched:
                    continue  # another operator's
                body = await self.state.kube.get(
                    path_for(API_VERSION, TRIGGER_PLURAL, namespace, name)
                )
                if body is None or not _is_schedule(body.get("spec") or {}, namespace):
                    with contextlib.suppress(kopf.TemporaryError):
                        await self.withdraw(namespace, name)

    async def _follow_fires(self, buckets: ScheduleBuckets) -> None:
        watcher = await buckets.fires.watchall()
        try:
            async for update in watcher:
                if update is None or update.operation in (KV_DEL, KV_PURGE) or not update.value:
                    continue
                try:
                    fire = ScheduleFire.parse(update.value)
                except ScheduleInvalid as bad:
                    log.error("schedule fire record %s is unreadable: %s", update.key, bad)
                    continue
                await self._write_fire(buckets, fire)
        finally:
            with contextlib.suppress(NatsError, TimeoutError):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def _write_fire(self, buckets: ScheduleBuckets, fire: ScheduleFire) -> None:
        entry: ScheduleEntry | None = None
        with contextlib.suppress(KeyNotFoundError, ScheduleInvalid):
            found = await buckets.catalog.get(fire.key)
            entry = ScheduleEntry.parse(found.value or b"")
        body = await write_trigger_status(
            self.state,
            fire.namespace,
            fire.trigger,
            self.state.triggers.routes,
            **fire_status(fire, entry, self.state.clock.now()),
        )
        if body is not None and not fire.delivered:
            await post_event(
                self.state.kube,
                body,
                "Warning",
                "FireFailed",
                f"the fire at {tick_text(fire.tick)} was not delivered: {fire.outcome}",
            )


def _is_schedule(spec: dict[str, Any], namespace: str) -> bool:
    try:
        return parse_trigger_spec(spec, namespace).schedule is not None
    except SpecInvalid:
        return False


def schedule_catalog(memo: kopf.Memo) -> ScheduleCatalog:
    catalog: ScheduleCatalog = memo["hanshu_schedules"]
    return catalog


def start_schedule_catalog(state: OperatorState, memo: kopf.Memo) -> None:
    """At start-up: connect to NATS (in the background) and follow the fires."""
    catalog = ScheduleCatalog(state)
    catalog.start()
    memo["hanshu_schedules"] = catalog
    state.background.append(catalog)
