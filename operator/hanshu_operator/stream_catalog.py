"""The operator's side of stream Triggers: it publishes each one into the stream catalog
bucket in NATS (the dispatchers read the stream), with the URL its Secret holds sealed for
the dispatchers (``hanshu_api.streams``), and writes the Trigger status (``SourceReady``,
``lag``, ``lastDeliveryTime``) from the reports the dispatchers record, so the dispatchers
need no Kubernetes API access and NATS readers never see a Secret.

Cost: one NATS connection and the set of catalog keys; a reconcile of a stream Trigger is
one Secret read and one KV get (a put only when the entry changed); of any other Trigger,
nothing. At start-up, each catalog entry of a watched namespace is checked against its
Trigger once, so a Trigger deleted while the operator was down is read no more. A report
(each reader's, every few seconds) is one status write at most (the writer skips
unchanged statuses). ``nats_catalog`` keeps the connection, the keys and the withdrawals;
this module says what a stream is.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf
from hanshu_api import GROUP, TRIGGER_PLURAL, VERSION
from hanshu_api.jetstream import (
    StreamBuckets,
    ensure_stream_buckets,
    publish_stream,
    withdraw_stream,
)
from hanshu_api.kube import path_for
from hanshu_api.models import SecretKeyRef, SpecInvalid, parse_trigger_spec
from hanshu_api.schedules import entry_key
from hanshu_api.streams import (
    StreamEntryInvalid,
    StreamReport,
    StreamStatus,
    merge_reports,
    stream_entry,
)
from nats.aio.client import Client as NATS

from .conditions import FALSE, TRUE, Condition, rfc3339
from .nats_catalog import NatsCatalog, watch_records
from .state import OperatorState, operator_state
from .trigger_status import SOURCE_READY, write_trigger_status

log = logging.getLogger("hanshu.operator.streams")


class SecretMissing(Exception):
    """The Secret (or its key) a stream source names is missing or empty."""


def status_fields(status: StreamStatus) -> tuple[Condition, dict[str, Any]]:
    """The SourceReady condition and status fields of the readers' merged view (the same
    the operator's daemon wrote when it read the streams itself)."""
    condition = (
        Condition(SOURCE_READY, TRUE, "Reading", status.message)
        if status.healthy
        else Condition(SOURCE_READY, FALSE, "SourceUnavailable", status.message)
    )
    fields: dict[str, Any] = {"lag": status.lag}
    if status.last_delivery is not None:
        fields["lastDeliveryTime"] = rfc3339(
            datetime.datetime.fromtimestamp(status.last_delivery, datetime.UTC)
        )
    return condition, fields


class StreamCatalog(NatsCatalog[StreamBuckets]):
    """Publishes stream Triggers and follows their readers' reports; inert without NATS."""

    kind = "stream"
    records = "stream reports"
    client_name = "hanshu-operator-streams"
    log = log  # the module's

    def __init__(self, state: OperatorState) -> None:
        super().__init__(state)
        # The latest report of each reader, by Trigger: merged into its status.
        self._reports: dict[tuple[str, str], dict[str, StreamReport]] = {}

    async def _ensure_buckets(self, client: NATS) -> StreamBuckets:
        return await ensure_stream_buckets(client, self.state.config.nats.stream_replicas)

    async def _withdraw_entry(self, buckets: StreamBuckets, namespace: str, name: str) -> None:
        await withdraw_stream(buckets, namespace, name)
        self._reports.pop((namespace, name), None)

    def _is_own_kind(self, spec: dict[str, Any], namespace: str) -> bool:
        return bool(_stream_spec(spec, namespace))

    async def _secret(self, namespace: str, ref: SecretKeyRef, field: str) -> str:
        found = await self.state.kube.get(path_for("v1", "secrets", namespace, ref.name))
        raw = ((found or {}).get("data") or {}).get(ref.key)
        value = base64.b64decode(raw).decode().strip() if raw else ""
        if not value:
            raise SecretMissing(
                f"the Secret '{ref.name}' (key '{ref.key}') named by {field} is missing or empty"
            )
        return value

    async def publish(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        """Publish a stream Trigger (``spec`` is its whole, valid spec). A missing Secret
        is said in SourceReady, and the stream is not read until it is there."""
        if not self.enabled:
            return
        trigger = parse_trigger_spec(spec, namespace)
        stream = trigger.stream
        assert stream is not None
        ref, field = (
            (stream.nats.url, "spec.stream.nats.urlSecretRef")
            if stream.nats is not None
            else (stream.redis.url if stream.redis else None, "spec.stream.redis.urlSecretRef")
        )
        try:
            url = await self._secret(namespace, ref, field) if ref is not None else None
        except SecretMissing as missing:
            await self.withdraw(namespace, name)
            await write_trigger_status(
                self.state,
                namespace,
                name,
                self.state.triggers.routes,
                source=Condition(SOURCE_READY, FALSE, "SourceUnavailable", str(missing)),
            )
            raise kopf.TemporaryError(
                str(missing), delay=self.state.config.retry_delay_seconds
            ) from None
        entry = stream_entry(
            namespace,
            name,
            trigger.function_name,
            spec["stream"],
            url,
            self.state.config.internal_token,
            trigger.target_ref,  # a version or an alias: the dispatcher invokes it there
        )
        await self._put(entry.key, lambda buckets: publish_stream(buckets, entry))

    async def _follow_records(self, buckets: StreamBuckets) -> None:
        await watch_records(
            buckets.reports,
            parse=StreamReport.parse,
            invalid=StreamEntryInvalid,
            handle=self._write,
            log=log,
            what="stream report",
        )

    async def _write(self, report: StreamReport) -> None:
        trigger = (report.namespace, report.trigger)
        if self._published is not None and entry_key(*trigger) not in self._published:
            return  # a withdrawn Trigger's last words
        readers = self._reports.setdefault(trigger, {})
        readers[report.reader] = report
        merged = merge_reports(readers.values(), time.time())
        if merged is None:
            return
        condition, fields = status_fields(merged)
        try:
            await write_trigger_status(
                self.state, *trigger, self.state.triggers.routes, source=condition, **fields
            )
        except Exception as error:  # a status write never stops the watch
            log.warning("%s/%s: cannot write the status: %s", *trigger, error)


def stream_catalog(memo: kopf.Memo) -> StreamCatalog:
    catalog: StreamCatalog = memo["hanshu_streams"]
    return catalog


def start_stream_catalog(state: OperatorState, memo: kopf.Memo) -> None:
    """At start-up: connect to NATS (in the background) and follow the readers' reports."""
    catalog = StreamCatalog(state)
    catalog.start()
    memo["hanshu_streams"] = catalog
    state.background.append(catalog)


def _stream_spec(spec: Mapping[str, Any], namespace: str) -> bool | None:
    """True: a valid stream Trigger; False: valid, another kind; None: invalid."""
    try:
        return parse_trigger_spec(dict(spec), namespace).stream is not None
    except SpecInvalid:
        return None


@kopf.on.resume(GROUP, VERSION, TRIGGER_PLURAL)
@kopf.on.create(GROUP, VERSION, TRIGGER_PLURAL)
@kopf.on.update(GROUP, VERSION, TRIGGER_PLURAL)
async def publish_stream_trigger(
    spec: kopf.Spec, name: str, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """A stream Trigger is published (again when edited); one that stops being a stream,
    or turns invalid (the reconcile says why), is withdrawn."""
    assert namespace is not None
    catalog = stream_catalog(memo)
    if _stream_spec(spec, namespace):
        operator_state(memo)  # fails loudly before start-up finished
        await catalog.publish(namespace, name, dict(spec))
    else:
        await catalog.withdraw(namespace, name)


@kopf.on.event(GROUP, VERSION, TRIGGER_PLURAL)
async def withdraw_deleted_stream(
    type: str | None, name: str, namespace: str | None, spec: kopf.Spec, memo: kopf.Memo, **_: Any
) -> None:
    """A deleted stream Trigger is read no more (kopf never retries event handlers: tried
    a few times here)."""
    if type != "DELETED" or namespace is None or spec.get("stream") is None:
        return
    for delay in (1.0, 3.0, 10.0, None):
        try:
            await stream_catalog(memo).withdraw(namespace, name)
            return
        except kopf.TemporaryError as error:
            if delay is None:
                log.error("stream %s/%s is still read: %s", namespace, name, error)
                return
            await asyncio.sleep(delay)
