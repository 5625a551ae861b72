"""The operator's side of schedule Triggers: it publishes each one into the catalog bucket
in NATS (the dispatchers fire it) and writes the Trigger status from the fires bucket (the
dispatchers record each fire there), so the dispatchers need no Kubernetes API access.

Cost: one NATS connection and the set of catalog keys; a reconcile of a schedule Trigger
is one KV put (of any other Trigger, nothing: the set says it was no schedule); a fire is
one status write (and one KV get of its catalog entry, for the next fire time). At
start-up, each catalog entry of a watched namespace is checked against its Trigger once,
so a Trigger deleted while the operator was down stops firing (``nats_catalog`` keeps the
connection, the keys and the withdrawals; this module says what a schedule is).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from typing import Any

import kopf
from hanshu_api.jetstream import (
    ScheduleBuckets,
    ensure_schedule_buckets,
    publish_schedule,
    withdraw_schedule,
)
from hanshu_api.models import SpecInvalid, parse_trigger_spec
from hanshu_api.schedules import (
    ScheduleEntry,
    ScheduleFire,
    ScheduleInvalid,
    tick_text,
)
from nats.aio.client import Client as NATS
from nats.js.errors import KeyNotFoundError

from .conditions import rfc3339
from .kube_events import post_event
from .nats_catalog import NatsCatalog, watch_records
from .state import OperatorState
from .trigger_status import write_trigger_status

log = logging.getLogger("hanshu.operator.schedules")


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


class ScheduleCatalog(NatsCatalog[ScheduleBuckets]):
    """Publishes schedule Triggers and follows their fires; inert without a NATS URL."""

    kind = "schedule"
    records = "schedule fires"
    client_name = "hanshu-operator"
    log = log  # the module's

    async def _ensure_buckets(self, client: NATS) -> ScheduleBuckets:
        return await ensure_schedule_buckets(client, self.state.config.nats.stream_replicas)

    async def _withdraw_entry(self, buckets: ScheduleBuckets, namespace: str, name: str) -> None:
        await withdraw_schedule(buckets, namespace, name)

    def _is_own_kind(self, spec: dict[str, Any], namespace: str) -> bool:
        return _is_schedule(spec, namespace)

    async def publish(self, entry: ScheduleEntry) -> None:
        if not self.enabled:
            return  # the Served condition says why nothing fires
        await self._put(entry.key, lambda buckets: publish_schedule(buckets, entry))

    async def _follow_records(self, buckets: ScheduleBuckets) -> None:
        await watch_records(
            buckets.fires,
            parse=ScheduleFire.parse,
            invalid=ScheduleInvalid,
            handle=lambda fire: self._write_fire(buckets, fire),
            log=log,
            what="schedule fire record",
        )

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
