"""Schedule Triggers between the operator and the dispatchers, through two NATS KV buckets.

The catalog (``SCHEDULE_CATALOG_BUCKET``): one ``ScheduleEntry`` per schedule Trigger, put
by the operator on each reconcile (and by dev mode from its manifests), deleted with the
Trigger or when it stops being a schedule. Every dispatcher watches it.

The fires (``SCHEDULE_FIRES_BUCKET``): one ``ScheduleFire`` per Trigger, the latest fire,
put by the dispatcher that stored it; the operator watches it and writes the Trigger's
status (``lastFireTime``, ``lastFireOutcome``), so the dispatcher needs no Kubernetes API.

Exactly once per tick: every dispatcher fires every tick, as an async invocation stored
through the gateway's internal port with the Idempotency-Key ``fire_key`` (Trigger and
tick); the gateway keeps the first and answers the others "duplicate". Killing one
dispatcher loses no tick while another runs.

Both messages are JSON, one encode and one parse each:

    catalog  "shop.nightly": {"namespace": "shop", "trigger": "nightly",
                              "function": "report", "cron": "30 2 * * *",
                              "timeZone": "Asia/Shanghai", "payload": {"team": "payments"}}
    fires    "shop.nightly": {"namespace": "shop", "trigger": "nightly",
                              "tick": "2026-06-01T18:30:00Z", "firedAt": 1780338600.012,
                              "delivered": true, "outcome": "stored as invocation 3f2a...",
                              "invocationId": "3f2a..."}
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .cron import parse_cron
from .message_fields import json_object, required_text
from .trigger_spec import DEFAULT_TIME_ZONE, Schedule, TriggerSpec
from .versions import FunctionTarget

SCHEDULE_CATALOG_BUCKET = "hanshu_schedules"
SCHEDULE_FIRES_BUCKET = "hanshu_schedule_fires"
EVENT_SOURCE = "hanshu.schedule"


class ScheduleInvalid(ValueError):
    """A catalog entry or fire record that cannot be read: the message names the field."""


def entry_key(namespace: str, trigger: str) -> str:
    """The bucket key of a Trigger. A namespace is a DNS label (no dot), so the first dot
    splits it from the name, which may hold dots."""
    return f"{namespace}.{trigger}"


def trigger_of_key(key: str) -> tuple[str, str]:
    namespace, _, name = key.partition(".")
    if not namespace or not name:
        raise ScheduleInvalid(f"{key!r} is not a namespace.trigger key")
    return namespace, name


def tick_text(tick: datetime.datetime) -> str:
    """A tick as RFC 3339 (UTC, whole seconds: cron ticks have no fractions)."""
    return tick.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_tick(text: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        raise ScheduleInvalid(f"tick {text!r} is not an RFC 3339 UTC time") from None
    return moment.replace(tzinfo=datetime.UTC)


def fire_key(namespace: str, trigger: str, tick: datetime.datetime) -> str:
    """The Idempotency-Key of a fire: the same for every dispatcher that fires this tick."""
    return f"schedule/{namespace}/{trigger}/{tick_text(tick)}"


def schedule_event(
    trigger: str, fire_time: datetime.datetime, schedule: Schedule
) -> dict[str, Any]:
    """The event a scheduled Function receives (Function Compute's timer trigger shape)."""
    return {
        "triggerName": trigger,
        "triggerTime": tick_text(fire_time),
        "source": EVENT_SOURCE,
        "payload": dict(schedule.payload),
    }


def _object(raw: bytes | str, what: str) -> Mapping[str, Any]:
    return json_object(raw, what, ScheduleInvalid)


def _text(fields: Mapping[str, Any], name: str, what: str) -> str:
    return required_text(fields, name, what, ScheduleInvalid)


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """What a dispatcher needs to fire a schedule Trigger."""

    namespace: str
    trigger: str
    function: str
    schedule: Schedule
    # The Trigger's functionRef version or alias (issue 28); both None for $LATEST.
    version: int | None = None
    alias: str | None = None

    @classmethod
    def of_trigger(
        cls, namespace: str, name: str, spec: TriggerSpec, target: FunctionTarget | None = None
    ) -> ScheduleEntry | None:
        """The catalog entry of a Trigger; None when it is not a schedule. ``target``: its
        functionRef's version or alias (by default the spec's own)."""
        if spec.schedule is None:
            return None
        target = target or spec.target_ref
        version = target.version if target is not None else None
        alias = target.alias if target is not None else None
        return cls(namespace, name, spec.function_name, spec.schedule, version, alias)

    @property
    def key(self) -> str:
        return entry_key(self.namespace, self.trigger)

    def next_tick(self, after: datetime.datetime) -> datetime.datetime:
        """The first cron time strictly after ``after``, in the schedule's time zone."""
        return parse_cron(self.schedule.cron).next_after(after, self.schedule.time_zone)

    def encode(self) -> bytes:
        return json.dumps(
            {
                "namespace": self.namespace,
                "trigger": self.trigger,
                "function": self.function,
                "cron": self.schedule.cron,
                "timeZone": self.schedule.time_zone,
                "payload": dict(self.schedule.payload),
                # Only when set: an entry of $LATEST reads as before (a rolling upgrade).
                **({"version": self.version} if self.version is not None else {}),
                **({"alias": self.alias} if self.alias is not None else {}),
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()

    @classmethod
    def parse(cls, raw: bytes | str) -> ScheduleEntry:
        what = "schedule catalog entry"
        fields = _object(raw, what)
        payload = fields.get("payload") or {}
        if not isinstance(payload, dict):
            raise ScheduleInvalid(f"the {what}'s payload is not an object")
        version, alias = fields.get("version"), fields.get("alias")
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int) or version < 1
        ):
            raise ScheduleInvalid(f"the {what}'s version must be a version number >= 1")
        if alias is not None and not isinstance(alias, str):
            raise ScheduleInvalid(f"the {what}'s alias must be a string")
        return cls(
            namespace=_text(fields, "namespace", what),
            trigger=_text(fields, "trigger", what),
            function=_text(fields, "function", what),
            schedule=Schedule(
                cron=_text(fields, "cron", what),
                time_zone=str(fields.get("timeZone") or DEFAULT_TIME_ZONE),
                payload=payload,
            ),
            version=version,
            alias=alias,
        )


@dataclass(frozen=True, slots=True)
class ScheduleFire:
    """The latest fire of a Trigger, as the dispatcher that made it saw it."""

    namespace: str
    trigger: str
    tick: datetime.datetime
    fired_at: float  # Unix time the fire was stored (or given up)
    delivered: bool
    outcome: str  # "stored as invocation <id>", or why it was not stored
    invocation_id: str | None = None

    @property
    def key(self) -> str:
        return entry_key(self.namespace, self.trigger)

    def supersedes(self, stored: ScheduleFire | None) -> bool:
        """Whether this record replaces ``stored``: a later tick does; the same tick only
        turns "not delivered" into "delivered" (a dispatcher that could not reach the
        gateway never hides the fire another one stored)."""
        if stored is None or self.tick > stored.tick:
            return True
        return self.tick == stored.tick and self.delivered and not stored.delivered

    def encode(self) -> bytes:
        return json.dumps(
            {
                "namespace": self.namespace,
                "trigger": self.trigger,
                "tick": tick_text(self.tick),
                "firedAt": self.fired_at,
                "delivered": self.delivered,
                "outcome": self.outcome,
                "invocationId": self.invocation_id,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def parse(cls, raw: bytes | str) -> ScheduleFire:
        what = "schedule fire record"
        fields = _object(raw, what)
        fired_at = fields.get("firedAt")
        if not isinstance(fired_at, int | float) or isinstance(fired_at, bool):
            raise ScheduleInvalid(f"the {what}'s firedAt is not a number")
        invocation_id = fields.get("invocationId")
        return cls(
            namespace=_text(fields, "namespace", what),
            trigger=_text(fields, "trigger", what),
            tick=parse_tick(_text(fields, "tick", what)),
            fired_at=float(fired_at),
            delivered=fields.get("delivered") is True,
            outcome=str(fields.get("outcome") or ""),
            invocation_id=invocation_id if isinstance(invocation_id, str) else None,
        )
