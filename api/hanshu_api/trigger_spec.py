"""The Trigger spec as a typed value: a Function reference and exactly one source (an HTTP
route, a schedule, bucket notifications, a stream or Kubernetes objects), and its parser."""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .cron import CronError, parse_cron
from .event_sources import (
    KubernetesSource,
    ObjectStorage,
    StreamSource,
    parse_kubernetes,
    parse_object_storage,
    parse_stream,
)
from .http_route import ApiKeyAuth, HttpRoute, parse_http_route
from .spec_fields import SpecInvalid
from .versions import FunctionTarget, parse_function_target

TRIGGER_SOURCES = ("http", "schedule", "objectStorage", "stream", "kubernetes")
FUNCTION_REF_NAME_MAX_LENGTH = 253
DEFAULT_TIME_ZONE = "UTC"
TIME_ZONE_MAX_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Schedule:
    cron: str
    time_zone: str = DEFAULT_TIME_ZONE
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    function_name: str
    http: HttpRoute | None = None
    schedule: Schedule | None = None
    object_storage: ObjectStorage | None = None
    stream: StreamSource | None = None
    kubernetes: KubernetesSource | None = None
    # What functionRef calls: the Function's $LATEST, a version or an alias. None only for
    # a TriggerSpec built by hand before versions existed: it means $LATEST.
    target_ref: FunctionTarget | None = None

    @property
    def target(self) -> FunctionTarget:
        """The Function's $LATEST, one of its versions, or an alias (docs/versions.md)."""
        return self.target_ref or FunctionTarget(self.function_name)

    @property
    def source_type(self) -> str:
        if self.http is not None:
            return "http"
        if self.object_storage is not None:
            return "objectStorage"
        if self.stream is not None:
            return "stream"
        if self.kubernetes is not None:
            return "kubernetes"
        return "schedule"

    @property
    def auth(self) -> ApiKeyAuth | None:
        """The Secret-held key callers must present: an HTTP route's API key, or the token
        a bucket's notifications carry."""
        if self.http is not None:
            return self.http.auth
        if self.object_storage is not None:
            return self.object_storage.token
        return None


def parse_schedule(raw: Mapping[str, Any], problems: list[str]) -> Schedule:
    cron = str(raw.get("cron") or "")
    try:
        parse_cron(cron)
    except CronError as error:
        problems.append(f"spec.schedule.cron: {error}")
    time_zone = str(raw.get("timeZone") or DEFAULT_TIME_ZONE)
    try:
        if len(time_zone) > TIME_ZONE_MAX_LENGTH:
            raise ValueError(time_zone)
        zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(
            f"spec.schedule.timeZone {time_zone!r} is not an IANA time zone (e.g. 'Asia/Shanghai')"
        )
    payload = raw.get("payload") or {}
    return Schedule(cron=cron, time_zone=time_zone, payload=payload)


def parse_trigger_spec(spec: Mapping[str, Any], namespace: str | None = None) -> TriggerSpec:
    problems: list[str] = []
    ref = spec.get("functionRef") or {}
    name = ref.get("name") if isinstance(ref, Mapping) else None
    if not name:
        problems.append("spec.functionRef.name is required")
    elif len(str(name)) > FUNCTION_REF_NAME_MAX_LENGTH:
        problems.append(
            f"spec.functionRef.name is longer than {FUNCTION_REF_NAME_MAX_LENGTH} characters"
        )
    target = parse_function_target(
        str(name or ""), ref if isinstance(ref, Mapping) else {}, problems
    )
    ref_namespace = ref.get("namespace") if isinstance(ref, Mapping) else None
    if ref_namespace and namespace and ref_namespace != namespace:
        problems.append(
            f"spec.functionRef.namespace {ref_namespace!r} differs from the Trigger's namespace "
            f"{namespace!r}; a Trigger can only call a Function in its own namespace"
        )
    sources = [key for key in TRIGGER_SOURCES if spec.get(key) is not None]
    if len(sources) != 1:
        problems.append(
            f"a Trigger must have exactly one source: {', '.join(TRIGGER_SOURCES)} "
            f"(found: {', '.join(sources) or 'none'})"
        )
    http = parse_http_route(spec["http"], problems) if spec.get("http") is not None else None
    raw_schedule = spec.get("schedule")
    schedule = parse_schedule(raw_schedule, problems) if raw_schedule is not None else None
    storage = spec.get("objectStorage")
    object_storage = parse_object_storage(storage, problems) if storage is not None else None
    stream = parse_stream(spec["stream"], problems) if spec.get("stream") is not None else None
    raw_kubernetes = spec.get("kubernetes")
    kubernetes = (
        parse_kubernetes(raw_kubernetes, problems, namespace)
        if raw_kubernetes is not None
        else None
    )
    if problems:
        raise SpecInvalid(problems)
    return TriggerSpec(
        function_name=str(name),
        http=http if sources == ["http"] else None,
        schedule=schedule if sources == ["schedule"] else None,
        object_storage=object_storage if sources == ["objectStorage"] else None,
        stream=stream if sources == ["stream"] else None,
        kubernetes=kubernetes if sources == ["kubernetes"] else None,
        target_ref=target,
    )
