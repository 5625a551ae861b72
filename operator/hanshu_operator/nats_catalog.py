"""What the operator's NATS catalogs (``schedule_catalog``, ``stream_catalog``) share: one
NATS connection kept in the background, the catalog's keys, withdrawals asked for before it
was reachable, the entries of Triggers deleted while the operator was down, and the watch on
the bucket the dispatchers record into. A subclass says what it publishes and what it
follows; the order at start-up (keys, then pending withdrawals, then forgotten Triggers,
then the watch) is kept here, once.

Cost: one NATS connection and the set of catalog keys, so a Trigger of another kind costs no
NATS call; at start-up, one Kubernetes read per catalog entry of a watched namespace.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import kopf
from hanshu_api import API_VERSION, TRIGGER_PLURAL
from hanshu_api.jetstream import connect
from hanshu_api.kube import path_for
from hanshu_api.schedules import ScheduleInvalid, entry_key, trigger_of_key
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js.errors import NoKeysError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from .state import OperatorState

# How long a reconcile waits for the NATS connection before it is retried later.
CONNECT_WAIT_SECONDS = 5.0
# Between tries at a NATS step that failed (setting up buckets, reading keys, watching).
RETRY_SECONDS = 1.0


class CatalogBuckets(Protocol):
    """Buckets with a catalog: the keys are ``namespace.trigger`` (``entry_key``)."""

    @property
    def catalog(self) -> KeyValue: ...


Buckets = TypeVar("Buckets", bound=CatalogBuckets)
Record = TypeVar("Record")


async def watch_records(
    bucket: KeyValue,
    *,
    parse: Callable[[bytes], Record],
    invalid: type[Exception],
    handle: Callable[[Record], Awaitable[None]],
    log: logging.Logger,
    what: str,
) -> None:
    """Hand each record the dispatchers put in ``bucket`` to ``handle`` until the watch
    fails; deletions (the records' TTL) are skipped, an unreadable record (``parse``
    raising ``invalid``) is logged as ``what`` ("schedule fire record") and skipped."""
    watcher = await bucket.watchall()
    try:
        async for update in watcher:
            if update is None or update.operation in (KV_DEL, KV_PURGE) or not update.value:
                continue
            try:
                record = parse(update.value)
            except invalid as bad:
                log.error("%s %s is unreadable: %s", what, update.key, bad)
                continue
            await handle(record)
    finally:
        with contextlib.suppress(NatsError, TimeoutError):
            await watcher.stop()  # type: ignore[no-untyped-call]


class NatsCatalog(abc.ABC, Generic[Buckets]):
    """A catalog of Triggers in NATS, written by the operator alone; inert without a NATS
    URL. Subclasses publish their entries through ``_put`` and fill the hooks below."""

    # What an entry is called in messages and logs ("schedule", "stream").
    kind: ClassVar[str]
    # What the record bucket holds, for its log lines ("schedule fires").
    records: ClassVar[str]
    # The NATS client name (shown by the NATS server's connection list).
    client_name: ClassVar[str]
    log: ClassVar[logging.Logger]

    def __init__(self, state: OperatorState) -> None:
        self.state = state
        self.url = state.config.nats.url
        self._client: NATS | None = None
        self._buckets: Buckets | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # The catalog's keys, read once connected and kept by publish and withdraw (one
        # operator writes the catalog): a Trigger of another kind costs no NATS call.
        self._published: set[str] | None = None
        # Withdrawals asked for before the keys were read: done once they are.
        self._pending: set[tuple[str, str]] = set()

    @abc.abstractmethod
    async def _ensure_buckets(self, client: NATS) -> Buckets:
        """Create the buckets when missing; raises NatsError or TimeoutError."""

    @abc.abstractmethod
    async def _withdraw_entry(self, buckets: Buckets, namespace: str, name: str) -> None:
        """Take one Trigger out of the catalog; raises NatsError or TimeoutError."""

    @abc.abstractmethod
    def _is_own_kind(self, spec: dict[str, Any], namespace: str) -> bool:
        """Whether a Trigger spec is a valid one of this catalog's kind."""

    @abc.abstractmethod
    async def _follow_records(self, buckets: Buckets) -> None:
        """Watch the bucket the dispatchers record into, until the watch fails."""

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
        self._client = client = await connect(self.url, self.client_name)
        while True:
            try:
                # One copy if the operator creates them first; the dispatchers, which
                # read HANSHU_NATS_REPLICAS, usually have.
                buckets = self._buckets = await self._ensure_buckets(client)
                break
            except (NatsError, TimeoutError) as error:
                self.log.warning(
                    "cannot set up the %s buckets (%s); trying again", self.kind, error
                )
                await asyncio.sleep(RETRY_SECONDS)
        self._published = await self._keys(buckets)
        self._connected.set()
        self.log.info("%ss published to NATS at %s", self.kind, self.url)
        for namespace, name in sorted(self._pending):
            with contextlib.suppress(kopf.TemporaryError):
                await self.withdraw(namespace, name)
        self._pending.clear()
        await self._forget_deleted_triggers()
        while True:
            try:
                await self._follow_records(buckets)
            except (NatsError, TimeoutError) as error:
                self.log.warning("lost the watch on %s (%s); watching again", self.records, error)
                await asyncio.sleep(RETRY_SECONDS)

    async def _ready(self) -> Buckets:
        """The buckets, or a TemporaryError: the reconcile is tried again later."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CONNECT_WAIT_SECONDS):
                await self._connected.wait()
        if self._buckets is None:
            raise kopf.TemporaryError(
                f"NATS at {self.url} is not reachable; the {self.kind} is published when it is",
                delay=self.state.config.retry_delay_seconds,
            )
        return self._buckets

    async def _put(self, key: str, put: Callable[[Buckets], Awaitable[None]]) -> None:
        """Publish one entry (``put`` writes it into the buckets) once NATS is reachable;
        a TemporaryError when it is not, so the reconcile is tried again later."""
        buckets = await self._ready()
        try:
            await put(buckets)
        except (NatsError, TimeoutError) as error:
            raise kopf.TemporaryError(
                f"cannot publish the {self.kind} to NATS: {error}",
                delay=self.state.config.retry_delay_seconds,
            ) from None
        if self._published is not None:
            self._published.add(key)

    async def withdraw(self, namespace: str, name: str) -> None:
        """Take out a Trigger that is gone, invalid or no longer of this kind. Raises
        TemporaryError when it is in the catalog and NATS cannot be reached."""
        if not self.enabled:
            return
        if self._published is None or self._buckets is None:
            self._pending.add((namespace, name))  # done once connected
            return
        key = entry_key(namespace, name)
        if key not in self._published:
            return  # most Triggers never were of this kind
        try:
            await self._withdraw_entry(self._buckets, namespace, name)
        except (NatsError, TimeoutError) as error:
            raise kopf.TemporaryError(
                f"cannot withdraw the {self.kind} from NATS: {error}",
                delay=self.state.config.retry_delay_seconds,
            ) from None
        self._published.discard(key)
        self.log.info("%s %s/%s withdrawn", self.kind, namespace, name)

    async def _keys(self, buckets: Buckets) -> set[str]:
        while True:
            try:
                return set(await buckets.catalog.keys())
            except NoKeysError:
                return set()
            except (NatsError, TimeoutError) as error:
                self.log.warning("cannot read the %s catalog (%s); trying again", self.kind, error)
                await asyncio.sleep(RETRY_SECONDS)

    async def _forget_deleted_triggers(self) -> None:
        """Withdraw the entries whose Trigger went (or stopped being of this kind) while
        the operator was down: nothing else would."""
        watched = self.state.config.namespaces
        for key in sorted(self._published or ()):
            with contextlib.suppress(ScheduleInvalid):
                namespace, name = trigger_of_key(key)
                if watched and namespace not in watched:
                    continue  # another operator's
                body = await self.state.kube.get(
                    path_for(API_VERSION, TRIGGER_PLURAL, namespace, name)
                )
                if body is None or not self._is_own_kind(body.get("spec") or {}, namespace):
                    with contextlib.suppress(kopf.TemporaryError):
                        await self.withdraw(namespace, name)
