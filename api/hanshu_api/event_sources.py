"""The event sources a Trigger may read instead of HTTP: bucket notifications
(objectStorage) and stream records (NATS JetStream, Redis Streams)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .destination import Destination, parse_destination
from .durations import parse_duration
from .http_route import ApiKeyAuth
from .settings import ConfigError
from .spec_fields import IntField, duration, integer

OBJECT_EVENT_FORMATS = ("s3", "oss")
DEFAULT_OBJECT_EVENT_FORMAT = "s3"
OBJECT_EVENT_PATTERN = re.compile(
    r"^s3:Object(Created|Removed|Restore|Tagging|Acl)?(:[A-Za-z*]+)?$"
)
DEFAULT_OBJECT_EVENTS = ("s3:ObjectCreated:*",)
MAX_OBJECT_EVENTS = 16
BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
DEFAULT_TOKEN_SECRET_KEY = "token"  # noqa: S105 - a key name, not a secret

STREAM_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
SUBJECT_FILTER_PATTERN = re.compile(r"^[A-Za-z0-9_*>-]+(\.[A-Za-z0-9_*>-]+)*$")
SUBJECT_FILTER_MAX_LENGTH = 256
REDIS_STREAM_MAX_LENGTH = 512
REDIS_START_POSITIONS = ("latest", "earliest")
DEFAULT_START_POSITION = "latest"
DEFAULT_URL_SECRET_KEY = "url"  # noqa: S105 - a key name, not a secret
DEFAULT_BATCH_SIZE = 10
DEFAULT_STREAM_RETRY_ATTEMPTS = 2
BATCH_SIZE = IntField("batchSize", 1, 1000, DEFAULT_BATCH_SIZE)
STREAM_RETRY_ATTEMPTS = IntField("maxRetryAttempts", 0, 100, DEFAULT_STREAM_RETRY_ATTEMPTS)
DEFAULT_BATCH_WINDOW = "0s"
MAX_BATCH_WINDOW_SECONDS = 300.0
DEFAULT_MAX_RECORD_AGE = "6h"
MIN_RECORD_AGE_SECONDS = 60.0
MAX_RECORD_AGE_SECONDS = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class ObjectStorage:
    """Bucket notifications (MinIO webhooks, AWS S3 through SNS) as async invocations."""

    bucket: str
    events: tuple[str, ...] = DEFAULT_OBJECT_EVENTS
    prefix: str = ""
    suffix: str = ""
    event_format: str = DEFAULT_OBJECT_EVENT_FORMAT
    # The bearer token the storage must send: a Secret key, verified like an API key.
    token: ApiKeyAuth | None = None


@dataclass(frozen=True, slots=True)
class SecretKeyRef:
    name: str
    key: str


@dataclass(frozen=True, slots=True)
class NatsSource:
    stream: str
    subject: str = ""  # a filter within the stream; empty: every subject
    url: SecretKeyRef | None = None  # another NATS; default: the platform's


@dataclass(frozen=True, slots=True)
class RedisSource:
    stream: str
    url: SecretKeyRef
    group: str = ""  # default: hanshu-<namespace>-<trigger>
    start_from: str = DEFAULT_START_POSITION


@dataclass(frozen=True, slots=True)
class StreamSource:
    """Records of a NATS JetStream stream or a Redis Stream, in batches, after Lambda's
    event source mappings."""

    nats: NatsSource | None = None
    redis: RedisSource | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    batch_window_seconds: float = parse_duration(DEFAULT_BATCH_WINDOW)
    max_retry_attempts: int = DEFAULT_STREAM_RETRY_ATTEMPTS
    max_record_age_seconds: float = parse_duration(DEFAULT_MAX_RECORD_AGE)
    on_failure: Destination | None = None
    report_batch_item_failures: bool = False
    ordered: bool = True

    @property
    def kind(self) -> str:
        return "nats" if self.nats is not None else "redis"


def parse_object_storage(raw: Mapping[str, Any], problems: list[str]) -> ObjectStorage:
    where = "spec.objectStorage."
    bucket = str(raw.get("bucket") or "")
    if not BUCKET_PATTERN.match(bucket):
        problems.append(
            f"{where}bucket {bucket!r} must be a bucket name: 3-63 lowercase letters, digits, "
            "'.' and '-'"
        )
    events = tuple(str(e) for e in raw.get("events") or DEFAULT_OBJECT_EVENTS)
    if len(events) > MAX_OBJECT_EVENTS:
        problems.append(f"{where}events lists {len(events)}; at most {MAX_OBJECT_EVENTS}")
    for event in events:
        if not OBJECT_EVENT_PATTERN.match(event):
            problems.append(
                f"{where}events: {event!r} is not an S3 event name such as "
                "'s3:ObjectCreated:*', 's3:ObjectCreated:Put' or 's3:ObjectRemoved:*'"
            )
    event_format = str(raw.get("eventFormat") or DEFAULT_OBJECT_EVENT_FORMAT)
    if event_format not in OBJECT_EVENT_FORMATS:
        problems.append(
            f"{where}eventFormat {event_format!r} must be one of {', '.join(OBJECT_EVENT_FORMATS)}"
        )
    filters = raw.get("filter") or {}
    token = None
    ref = (raw.get("auth") or {}).get("tokenSecretRef")
    if ref is not None:
        if not ref.get("name"):
            problems.append(f"{where}auth.tokenSecretRef.name is required")
        token = ApiKeyAuth(
            str(ref.get("name", "")),
            str(ref.get("key") or DEFAULT_TOKEN_SECRET_KEY),
            "Authorization",
        )
    return ObjectStorage(
        bucket=bucket,
        events=events,
        prefix=str(filters.get("prefix") or ""),
        suffix=str(filters.get("suffix") or ""),
        event_format=event_format,
        token=token,
    )


def _secret_key_ref(raw: Any, where: str, default_key: str, problems: list[str]) -> SecretKeyRef:
    if not isinstance(raw, Mapping) or not raw.get("name"):
        problems.append(f"{where}.name is required (a Secret in the Trigger's namespace)")
        return SecretKeyRef("", default_key)
    return SecretKeyRef(str(raw["name"]), str(raw.get("key") or default_key))


def _nats(nats: Mapping[str, Any], where: str, problems: list[str]) -> NatsSource:
    name = str(nats.get("stream") or "")
    if not STREAM_NAME_PATTERN.match(name):
        problems.append(f"{where}nats.stream {name!r} must be a JetStream stream name")
    subject = str(nats.get("subject") or "")
    if subject and (
        len(subject) > SUBJECT_FILTER_MAX_LENGTH or not SUBJECT_FILTER_PATTERN.match(subject)
    ):
        problems.append(f"{where}nats.subject {subject!r} is not a NATS subject filter")
    url = nats.get("urlSecretRef")
    return NatsSource(
        name,
        subject,
        _secret_key_ref(url, f"{where}nats.urlSecretRef", DEFAULT_URL_SECRET_KEY, problems)
        if url
        else None,
    )


def _redis(redis: Mapping[str, Any], where: str, problems: list[str]) -> RedisSource:
    name = str(redis.get("stream") or "")
    if not name or len(name) > REDIS_STREAM_MAX_LENGTH:
        problems.append(f"{where}redis.stream is required (the Redis Stream's key)")
    start = str(redis.get("startFrom") or DEFAULT_START_POSITION)
    if start not in REDIS_START_POSITIONS:
        problems.append(
            f"{where}redis.startFrom {start!r} must be {' or '.join(REDIS_START_POSITIONS)}"
        )
    return RedisSource(
        name,
        _secret_key_ref(
            redis.get("urlSecretRef"),
            f"{where}redis.urlSecretRef",
            DEFAULT_URL_SECRET_KEY,
            problems,
        ),
        str(redis.get("group") or ""),
        start,
    )


def parse_stream(raw: Mapping[str, Any], problems: list[str]) -> StreamSource:
    where = "spec.stream."
    kinds = [key for key in ("nats", "redis") if raw.get(key) is not None]
    if len(kinds) != 1:
        problems.append(
            f"{where[:-1]} must have exactly one source: nats or redis "
            f"(found: {', '.join(kinds) or 'none'}); Kafka is not supported yet"
        )
    nats = _nats(raw["nats"], where, problems) if raw.get("nats") is not None else None
    redis = _redis(raw["redis"], where, problems) if raw.get("redis") is not None else None
    window = duration(raw, "batchWindow", DEFAULT_BATCH_WINDOW, where, problems)
    if window > MAX_BATCH_WINDOW_SECONDS:
        problems.append(f"{where}batchWindow must be at most 5m, got {raw.get('batchWindow')!r}")
        window = MAX_BATCH_WINDOW_SECONDS
    max_age = duration(raw, "maxRecordAge", DEFAULT_MAX_RECORD_AGE, where, problems)
    if not MIN_RECORD_AGE_SECONDS <= max_age <= MAX_RECORD_AGE_SECONDS:
        problems.append(f"{where}maxRecordAge must be from 1m to 168h")
        max_age = parse_duration(DEFAULT_MAX_RECORD_AGE)
    return StreamSource(
        nats=nats,
        redis=redis,
        batch_size=integer(raw, BATCH_SIZE, where, problems),
        batch_window_seconds=window,
        max_retry_attempts=integer(raw, STREAM_RETRY_ATTEMPTS, where, problems),
        max_record_age_seconds=max_age,
        on_failure=parse_destination(raw.get("onFailure"), f"{where}onFailure", problems),
        report_batch_item_failures=bool(raw.get("reportBatchItemFailures", False)),
        ordered=bool(raw.get("ordered", True)),
    )


# -- Kubernetes objects: the cluster's own events (Fission's watch triggers, Knative's
# ApiServerSource), read by the gateway's watch and stored as Event invocations. -----------

KUBE_EVENT_TYPES = ("ADDED", "MODIFIED", "DELETED")
KUBE_API_VERSION_MAX_LENGTH = 253
KUBE_API_VERSION_PATTERN = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?v[0-9]+([a-z]+[0-9]+)?$"
)
KUBE_KIND_MAX_LENGTH = 63
KUBE_KIND_PATTERN = re.compile(r"^[A-Z][A-Za-z0-9]*$")
KUBE_NAMESPACE_MAX_LENGTH = 63
KUBE_MAX_MATCH_LABELS = 16
LABEL_KEY_MAX_LENGTH = 317  # a 253-character prefix, '/', a 63-character name
LABEL_VALUE_MAX_LENGTH = 63
# The chart's list of kinds the gateway may watch (and is granted read on), and the
# variable that carries it to the gateway and the operator.
WATCHABLE_KINDS_VALUE = "gateway.watchableKinds"
WATCHABLE_KINDS_ENV = "HANSHU_WATCHABLE_KINDS"


@dataclass(frozen=True, slots=True)
class KubernetesSource:
    """Events of the objects of one kind in the Trigger's namespace, as async Event
    invocations: the gateway watches them, JetStream keeps them, the dispatcher delivers."""

    api_version: str
    kind: str
    match_labels: tuple[tuple[str, str], ...] = ()
    event_types: tuple[str, ...] = KUBE_EVENT_TYPES

    @property
    def kind_key(self) -> tuple[str, str]:
        return (self.api_version, self.kind)

    def selects(self, event_type: str, labels: Mapping[str, Any] | None) -> bool:
        """Whether an event of this type, on an object with these labels, calls the Function."""
        if event_type not in self.event_types:
            return False
        have = labels or {}
        return all(have.get(key) == value for key, value in self.match_labels)


def parse_kubernetes(
    raw: Mapping[str, Any], problems: list[str], namespace: str | None = None
) -> KubernetesSource:
    where = "spec.kubernetes."
    api_version = str(raw.get("apiVersion") or "")
    if len(api_version) > KUBE_API_VERSION_MAX_LENGTH or not KUBE_API_VERSION_PATTERN.match(
        api_version
    ):
        problems.append(f"{where}apiVersion {api_version!r} must be like 'v1' or 'apps/v1'")
    kind = str(raw.get("kind") or "")
    if len(kind) > KUBE_KIND_MAX_LENGTH or not KUBE_KIND_PATTERN.match(kind):
        problems.append(f"{where}kind {kind!r} must be a kind such as 'ConfigMap'")
    watched = raw.get("namespace")
    # Only the Trigger's own namespace: a Trigger elsewhere would hand another namespace's
    # objects to whoever may create Triggers here.
    if watched and namespace and watched != namespace:
        problems.append(
            f"{where}namespace {watched!r} differs from the Trigger's namespace {namespace!r}; "
            "a Trigger can only watch objects in its own namespace"
        )
    selector = raw.get("labelSelector") or {}
    labels = selector.get("matchLabels") or {} if isinstance(selector, Mapping) else {}
    if len(labels) > KUBE_MAX_MATCH_LABELS:
        problems.append(
            f"{where}labelSelector.matchLabels has {len(labels)}; at most {KUBE_MAX_MATCH_LABELS}"
        )
    types = tuple(str(t) for t in raw.get("eventTypes") or KUBE_EVENT_TYPES)
    for event_type in types:
        if event_type not in KUBE_EVENT_TYPES:
            problems.append(
                f"{where}eventTypes: {event_type!r} is not one of {', '.join(KUBE_EVENT_TYPES)}"
            )
    return KubernetesSource(
        api_version=api_version,
        kind=kind,
        match_labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        event_types=tuple(dict.fromkeys(types)),
    )


@dataclass(frozen=True, slots=True)
class WatchableKind:
    api_version: str
    kind: str
    resource: str  # the plural in the API's paths, as RBAC names it: 'configmaps'

    @property
    def key(self) -> tuple[str, str]:
        return (self.api_version, self.kind)


def parse_watchable_kinds(text: str) -> dict[tuple[str, str], WatchableKind]:
    """``HANSHU_WATCHABLE_KINDS``: comma-separated ``apiVersion/Kind=resource`` entries, as
    the chart renders gateway.watchableKinds ('v1/ConfigMap=configmaps,apps/v1/Deployment=
    deployments'). The resource is given, not discovered: the chart needs it for the RBAC
    rule anyway, and the gateway then needs no discovery rights. Raises ValueError."""
    kinds: dict[tuple[str, str], WatchableKind] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        qualified, _, resource = entry.partition("=")
        api_version, _, kind = qualified.rpartition("/")
        if not (
            KUBE_API_VERSION_PATTERN.match(api_version)
            and KUBE_KIND_PATTERN.match(kind)
            and re.fullmatch(r"[a-z0-9][a-z0-9-]*", resource)
        ):
            raise ValueError(
                f"{entry!r} is not 'apiVersion/Kind=resource' (e.g. 'v1/ConfigMap=configmaps')"
            )
        found = WatchableKind(api_version, kind, resource)
        kinds[found.key] = found
    return kinds


def watchable_kinds_from_env(env: Mapping[str, str]) -> dict[tuple[str, str], WatchableKind]:
    """The chart's gateway.watchableKinds; a malformed entry is a ConfigError."""
    found = env.get(WATCHABLE_KINDS_ENV, "")
    try:
        return parse_watchable_kinds(found)
    except ValueError as error:
        raise ConfigError(
            WATCHABLE_KINDS_ENV,
            f"is {found!r}: its entry {error}",
            "comma-separated apiVersion/Kind=resource entries (the chart's gateway.watchableKinds)",
        ) from None


def not_watchable_message(source: KubernetesSource) -> str:
    """Why a Trigger on a kind outside the chart's list does nothing, and how to allow it."""
    return (
        f"{source.kind} ({source.api_version}) is not in the chart value {WATCHABLE_KINDS_VALUE}, "
        "so the gateway is not allowed to watch it; add "
        f"{{apiVersion: {source.api_version}, kind: {source.kind}, resource: <plural>}} "
        "to that list and upgrade the release"
    )
