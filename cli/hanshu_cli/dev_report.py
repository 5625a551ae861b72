"""What ``hanshu dev`` prints of what it serves: the route table at start-up (HTTP routes,
schedules with their next fire and a command to fire one now, buckets, streams, the
internal port), and one line per change when it reloads. Pure: text from data."""

from __future__ import annotations

import datetime
import json
import shlex
from collections.abc import Collection, Sequence

from hanshu_api.gateway_paths import enqueue_path
from hanshu_api.platform import FunctionKey
from hanshu_api.schedules import ScheduleEntry, schedule_event
from hanshu_gateway.catalog import KnownTrigger

TriggerKey = tuple[str, str]


def route_line(trigger: KnownTrigger) -> str:
    """``GET,POST  any host  /path  -> function`` for an HTTP Trigger."""
    http = trigger.spec.http
    assert http is not None
    methods = ",".join(http.methods) or "any method"
    host = http.host or "any host"
    return f"{methods}  {host}  {http.path}  -> {trigger.spec.function_name}"


def fire_command(entry: ScheduleEntry, internal_url: str, now: datetime.datetime) -> str:
    """A curl that fires a schedule now: its event, stored as the dispatcher stores a fire."""
    event = schedule_event(entry.trigger, now, entry.schedule)
    url = internal_url + enqueue_path(entry.namespace, entry.function)
    return f"curl -X POST {url} -d {shlex.quote(json.dumps(event, separators=(',', ':')))}"


def schedule_line(entry: ScheduleEntry, now: datetime.datetime) -> str:
    fire = entry.next_tick(now)
    return (
        f"{entry.trigger}  '{entry.schedule.cron}' ({entry.schedule.time_zone})  "
        f"-> {entry.function}, next fire {fire.astimezone(datetime.UTC):%Y-%m-%d %H:%M} UTC"
    )


def route_table(
    triggers: Sequence[KnownTrigger],
    refused: Collection[TriggerKey],
    *,
    public_url: str,
    internal_url: str,
    async_on: bool,
    now: datetime.datetime,
    s3_url: str = "",
) -> list[str]:
    """The lines printed once dev mode serves: every route and event source it serves,
    and where to reach the internal port."""
    lines = [f"serving on {public_url}"]
    http = [t for t in triggers if t.spec.http is not None and (t.namespace, t.name) not in refused]
    if http:
        lines.append("routes:")
        lines += [f"  {route_line(t)}" for t in http]
    schedules = [
        entry
        for known in triggers
        if (entry := ScheduleEntry.of_trigger(known.namespace, known.name, known.spec))
    ]
    if schedules and async_on:
        lines.append("schedules (fire one now with the curl under it):")
        for entry in schedules:
            lines.append(f"  {schedule_line(entry, now)}")
            lines.append(f"    {fire_command(entry, internal_url, now)}")
    buckets = [t for t in triggers if t.spec.object_storage is not None]
    if buckets:
        lines.append(f"buckets (S3 at {s3_url}):" if s3_url else "buckets:")
        for known in buckets:
            storage = known.spec.object_storage
            assert storage is not None
            lines.append(f"  {storage.bucket}  -> {known.spec.function_name}")
    streams = [t for t in triggers if t.spec.stream is not None]
    if streams and async_on:
        lines.append("streams:")
        lines += [f"  {t.name}  -> {t.spec.function_name}" for t in streams]
    lines.append(f"internal port: {internal_url} (/functions, /metrics, /_hanshu/enqueue/...)")
    return lines


def trigger_summary(trigger: KnownTrigger) -> str:
    """What a Trigger serves, in a few words (for a reload's lines)."""
    spec = trigger.spec
    if spec.http is not None:
        return route_line(trigger)
    if spec.schedule is not None:
        return f"schedule '{spec.schedule.cron}' -> {spec.function_name}"
    if spec.object_storage is not None:
        return f"bucket {spec.object_storage.bucket} -> {spec.function_name}"
    if spec.stream is not None:
        return f"stream -> {spec.function_name}"
    return f"-> {spec.function_name}"


def function_change(key: FunctionKey, what: str, files: Sequence[str] = ()) -> str:
    """``Function greeter: reloaded (handler.py changed)``."""
    detail = f" ({', '.join(files)} changed)" if files else ""
    return f"Function {key[1]}: {what}{detail}"
