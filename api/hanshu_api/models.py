"""The Function and Trigger specs as typed values, parsed and checked in one place.

The CRD schemas (crds/) reject most bad input at ``kubectl apply``; these parsers apply the
same defaults (a test keeps them equal to the CRDs') and check what a schema cannot: that the
inline code holds the handler's module, that durations and quantities parse, that a
time zone exists. Every problem is collected, so a user fixes them all in one round.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .durations import parse_duration
from .quantities import parse_quantity

HANDLER_PATTERN = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*([.:][A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*)$"
)
FILE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
HANDLER_TYPES = ("event", "wsgi", "asgi")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
TRIGGER_SOURCES = ("http", "schedule", "objectStorage", "stream")

DEFAULT_TIMEOUT_SECONDS = 30
DEFAULT_CONCURRENCY = 100
DEFAULT_MIN_REPLICAS = 0
DEFAULT_MAX_REPLICAS = 10
DEFAULT_TARGET_CONCURRENCY = 10
DEFAULT_SCALE_TO_ZERO_GRACE = "30s"
DEFAULT_SCALE_DOWN_DELAY = "0s"
DEFAULT_MEMORY_MB = 256
DEFAULT_MAX_RETRY_ATTEMPTS = 2
MAX_RETRY_ATTEMPTS = 8
DEFAULT_MAX_EVENT_AGE = "6h"
# Lambda's bounds for an async event's age: a minute to six hours.
MIN_EVENT_AGE_SECONDS = 60.0
MAX_EVENT_AGE_SECONDS = 6 * 3600.0
SUBJECT_PATTERN = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


class SpecInvalid(ValueError):
    """The spec cannot work; ``problems`` says every reason, each naming the field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def module_of(handler: str) -> str:
    """'index.handler' -> 'index'; 'app:server.app' -> 'app'."""
    if ":" in handler:
        return handler.split(":", 1)[0]
    return handler.rsplit(".", 1)[0]


@dataclass(frozen=True, slots=True)
class Scaling:
    min_replicas: int = DEFAULT_MIN_REPLICAS
    max_replicas: int = DEFAULT_MAX_REPLICAS
    target_concurrency: int = DEFAULT_TARGET_CONCURRENCY
    scale_to_zero_grace_seconds: float = 30.0
    scale_down_delay_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Destination:
    """Where an async invocation's outcome goes: exactly one of the three."""

    function: str | None = None  # a Function in the same namespace, invoked async
    url: str | None = None  # POSTed the record
    subject: str | None = None  # a NATS subject the record is published on

    def as_dict(self) -> dict[str, str]:
        for key in ("function", "url", "subject"):
            value = getattr(self, key)
            if value:
                return {key: value}
        return {}


@dataclass(frozen=True, slots=True)
class AsyncPolicy:
    max_retry_attempts: int = DEFAULT_MAX_RETRY_ATTEMPTS
    max_event_age_seconds: float = 6 * 3600.0
    on_success: Destination | None = None
    on_failure: Destination | None = None


@dataclass(frozen=True, slots=True)
class Code:
    inline: Mapping[str, str] | None = None
    config_map: str | None = None
    image: str | None = None


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    handler: str
    code: Code
    handler_type: str = "event"
    initializer: str | None = None
    env: tuple[Mapping[str, Any], ...] = ()
    env_from: tuple[Mapping[str, Any], ...] = ()
    resources: Mapping[str, Any] = field(default_factory=dict)
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    concurrency: int = DEFAULT_CONCURRENCY
    scaling: Scaling = Scaling()
    service_account_name: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    async_policy: AsyncPolicy = AsyncPolicy()

    @property
    def memory_mb(self) -> int:
        """The memory limit (else request) in MiB, with no platform defaults known."""
        return self.effective_memory_mb({})

    def effective_resources(self, defaults: Mapping[str, Any]) -> Mapping[str, Any]:
        """What the pod gets: the Function's own resources win whole, else the platform's
        defaults (the chart's ``functionDefaults.resources``)."""
        return self.resources or defaults

    def effective_memory_mb(self, defaults: Mapping[str, Any]) -> int:
        """The memory limit (else request) in MiB the pod really has: what
        ``context.memory_limit_in_mb`` and GB-second metering report."""
        resources = self.effective_resources(defaults)
        for section in ("limits", "requests"):
            value = (resources.get(section) or {}).get("memory")
            if value is not None:
                return max(1, int(parse_quantity(value) // 2**20))
        return DEFAULT_MEMORY_MB


def _integer(
    raw: Mapping[str, Any],
    key: str,
    default: int,
    lo: int,
    hi: int | None,
    where: str,
    problems: list[str],
) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"{where}{key} must be an integer, got {value!r}")
        return default
    if value < lo or (hi is not None and value > hi):
        bound = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
        problems.append(f"{where}{key} must be {bound}, got {value}")
        return default
    return value


def _duration(
    raw: Mapping[str, Any], key: str, default: str, where: str, problems: list[str]
) -> float:
    try:
        return parse_duration(str(raw.get(key, default)))
    except ValueError as error:
        problems.append(f"{where}{key}: {error}")
        return parse_duration(default)


def _scaling(raw: Mapping[str, Any], problems: list[str]) -> Scaling:
    where = "spec.scaling."
    scaling = Scaling(
        min_replicas=_integer(raw, "minReplicas", DEFAULT_MIN_REPLICAS, 0, None, where, problems),
        max_replicas=_integer(raw, "maxReplicas", DEFAULT_MAX_REPLICAS, 1, None, where, problems),
        target_concurrency=_integer(
            raw, "targetConcurrency", DEFAULT_TARGET_CONCURRENCY, 1, None, where, problems
        ),
        scale_to_zero_grace_seconds=_duration(
            raw, "scaleToZeroGracePeriod", DEFAULT_SCALE_TO_ZERO_GRACE, where, problems
        ),
        scale_down_delay_seconds=_duration(
            raw, "scaleDownDelay", DEFAULT_SCALE_DOWN_DELAY, where, problems
        ),
    )
    if scaling.min_replicas > scaling.max_replicas:
        problems.append(
            f"spec.scaling.minReplicas ({scaling.min_replicas}) must not be greater than "
            f"spec.scaling.maxReplicas ({scaling.max_replicas})"
        )
    return scaling


def _destination(raw: Any, where: str, problems: list[str]) -> Destination | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.append(f"{where} must be an object with one of function, url or subject")
        return None
    given = [key for key in ("function", "url", "subject") if raw.get(key)]
    if len(given) != 1:
        problems.append(
            f"{where} must have exactly one of function, url or subject "
            f"(found: {', '.join(given) or 'none'})"
        )
        return None
    value = str(raw[given[0]])
    if given[0] == "url" and not re.match(r"^https?://[^/\s]+", value):
        problems.append(f"{where}.url {value!r} must be an http(s) URL")
    if given[0] == "subject" and not SUBJECT_PATTERN.match(value):
        problems.append(
            f"{where}.subject {value!r} must be a NATS subject of dot-separated tokens "
            "(letters, digits, '-' and '_'; no wildcards)"
        )
    return Destination(**{given[0]: value})


def _async_policy(raw: Mapping[str, Any], problems: list[str]) -> AsyncPolicy:
    where = "spec.async."
    max_age = _duration(raw, "maxEventAge", DEFAULT_MAX_EVENT_AGE, where, problems)
    if not MIN_EVENT_AGE_SECONDS <= max_age <= MAX_EVENT_AGE_SECONDS:
        problems.append(f"{where}maxEventAge must be from 1m to 6h, got {raw.get('maxEventAge')!r}")
        max_age = MAX_EVENT_AGE_SECONDS
    destinations = raw.get("destinations") or {}
    return AsyncPolicy(
        max_retry_attempts=_integer(
            raw,
            "maxRetryAttempts",
            DEFAULT_MAX_RETRY_ATTEMPTS,
            0,
            MAX_RETRY_ATTEMPTS,
            where,
            problems,
        ),
        max_event_age_seconds=max_age,
        on_success=_destination(
            destinations.get("onSuccess"), f"{where}destinations.onSuccess", problems
        ),
        on_failure=_destination(
            destinations.get("onFailure"), f"{where}destinations.onFailure", problems
        ),
    )


def _code(
    raw: Mapping[str, Any], handler: str, initializer: str | None, problems: list[str]
) -> Code:
    sources = [key for key in ("inline", "configMap", "image") if raw.get(key)]
    if len(sources) != 1:
        found = ", ".join(sources) or "none"
        problems.append(
            f"spec.code must have exactly one of inline, configMap or image (found: {found})"
        )
        return Code()
    inline = raw.get("inline")
    if inline is not None:
        if not isinstance(inline, Mapping):
            problems.append("spec.code.inline must map file names to their content")
            return Code()
        for name in inline:
            if not FILE_NAME_PATTERN.match(name):
                problems.append(
                    f"spec.code.inline file name {name!r} must be a plain file name such as "
                    "'index.py' (no '/')"
                )
        for role, entry in (("handler", handler), ("initializer", initializer)):
            if entry and HANDLER_PATTERN.match(entry):
                module = module_of(entry)
                if "." in module:
                    problems.append(
                        f"spec.{role} names module '{module}', a package path, but inline code "
                        "is flat files; use a top-level module or an image"
                    )
                elif f"{module}.py" not in inline:
                    files = ", ".join(sorted(inline)) or "no files"
                    problems.append(
                        f"spec.{role} '{entry}' needs {module}.py in spec.code.inline "
                        f"(it has {files})"
                    )
        return Code(inline=dict(inline))
    config_map = raw.get("configMap")
    if config_map is not None:
        name = config_map.get("name") if isinstance(config_map, Mapping) else None
        if not name:
            problems.append("spec.code.configMap.name is required")
        return Code(config_map=name)
    return Code(image=str(raw["image"]))


def parse_function_spec(spec: Mapping[str, Any]) -> FunctionSpec:
    problems: list[str] = []
    handler = spec.get("handler")
    if not isinstance(handler, str) or not HANDLER_PATTERN.match(handler):
        problems.append(
            f"spec.handler {handler!r} must be 'module.function' (e.g. 'index.handler') "
            "or 'module:object' (e.g. 'app:app')"
        )
        handler = ""
    handler_type = spec.get("handlerType", "event")
    if handler_type not in HANDLER_TYPES:
        problems.append(
            f"spec.handlerType {handler_type!r} must be one of {', '.join(HANDLER_TYPES)}"
        )
    initializer = spec.get("initializer") or None
    if initializer is not None and not HANDLER_PATTERN.match(str(initializer)):
        problems.append(f"spec.initializer {initializer!r} must be 'module.function'")
    code = _code(spec.get("code") or {}, handler, initializer, problems)
    env = tuple(spec.get("env") or ())
    for entry in env:
        if str(entry.get("name", "")).startswith("HANSHU_"):
            problems.append(
                f"spec.env name {entry['name']!r}: names starting with HANSHU_ are reserved"
            )
    resources = dict(spec.get("resources") or {})
    for section in ("requests", "limits"):
        for resource, value in (resources.get(section) or {}).items():
            try:
                parse_quantity(value)
            except ValueError as error:
                problems.append(f"spec.resources.{section}.{resource}: {error}")
    parsed = FunctionSpec(
        handler=handler,
        handler_type=handler_type if handler_type in HANDLER_TYPES else "event",
        code=code,
        initializer=initializer,
        env=env,
        env_from=tuple(spec.get("envFrom") or ()),
        resources=resources,
        timeout_seconds=_integer(
            spec, "timeoutSeconds", DEFAULT_TIMEOUT_SECONDS, 1, 3600, "spec.", problems
        ),
        concurrency=_integer(spec, "concurrency", DEFAULT_CONCURRENCY, 1, 1000, "spec.", problems),
        scaling=_scaling(spec.get("scaling") or {}, problems),
        service_account_name=spec.get("serviceAccountName") or None,
        node_selector=dict(spec.get("nodeSelector") or {}),
        tolerations=tuple(spec.get("tolerations") or ()),
        async_policy=_async_policy(spec.get("async") or {}, problems),
    )
    if problems:
        raise SpecInvalid(problems)
    return parsed


# -- Trigger ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiKeyAuth:
    secret_name: str
    secret_key: str = "api-key"  # noqa: S105 - a key name, not a secret
    header: str = "X-API-Key"


@dataclass(frozen=True, slots=True)
class RateLimit:
    requests_per_second: float
    burst: int


@dataclass(frozen=True, slots=True)
class Cors:
    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class HttpRoute:
    host: str = ""
    path: str = "/"
    strip_prefix: bool = False
    methods: tuple[str, ...] = ()
    auth: ApiKeyAuth | None = None
    rate_limit: RateLimit | None = None
    cors: Cors | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    cron: str
    time_zone: str = "UTC"
    payload: Mapping[str, Any] = field(default_factory=dict)


OBJECT_EVENT_FORMATS = ("s3", "oss")
OBJECT_EVENT_PATTERN = re.compile(
    r"^s3:Object(Created|Removed|Restore|Tagging|Acl)?(:[A-Za-z*]+)?$"
)
DEFAULT_OBJECT_EVENTS = ("s3:ObjectCreated:*",)


@dataclass(frozen=True, slots=True)
class ObjectStorage:
    """Bucket notifications (MinIO webhooks, AWS S3 through SNS) as async invocations."""

    bucket: str
    events: tuple[str, ...] = DEFAULT_OBJECT_EVENTS
    prefix: str = ""
    suffix: str = ""
    event_format: str = "s3"
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
    start_from: str = "latest"


@dataclass(frozen=True, slots=True)
class StreamSource:
    """Records of a NATS JetStream stream or a Redis Stream, in batches, after Lambda's
    event source mappings."""

    nats: NatsSource | None = None
    redis: RedisSource | None = None
    batch_size: int = 10
    batch_window_seconds: float = 0.0
    max_retry_attempts: int = 2
    max_record_age_seconds: float = 6 * 3600.0
    on_failure: Destination | None = None
    report_batch_item_failures: bool = False
    ordered: bool = True

    @property
    def kind(self) -> str:
        return "nats" if self.nats is not None else "redis"


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    function_name: str
    http: HttpRoute | None = None
    schedule: Schedule | None = None
    object_storage: ObjectStorage | None = None
    stream: StreamSource | None = None

    @property
    def source_type(self) -> str:
        if self.http is not None:
            return "http"
        if self.object_storage is not None:
            return "objectStorage"
        if self.stream is not None:
            return "stream"
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


def _http(raw: Mapping[str, Any], problems: list[str]) -> HttpRoute:
    path = str(raw.get("path") or "/")
    if not path.startswith("/"):
        problems.append(f"spec.http.path {path!r} must start with '/'")
    methods = tuple(str(m).upper() for m in raw.get("methods") or ())
    for method in methods:
        if method not in HTTP_METHODS:
            problems.append(
                f"spec.http.methods: {method!r} is not one of {', '.join(HTTP_METHODS)}"
            )
    auth = None
    if raw.get("auth"):
        ref = raw["auth"].get("apiKeySecretRef") or {}
        if not ref.get("name"):
            problems.append("spec.http.auth.apiKeySecretRef.name is required")
        auth = ApiKeyAuth(
            str(ref.get("name", "")),
            str(ref.get("key") or "api-key"),
            str(raw["auth"].get("header") or "X-API-Key"),
        )
    rate_limit = None
    if raw.get("rateLimit"):
        rps = raw["rateLimit"].get("requestsPerSecond")
        if isinstance(rps, bool) or not isinstance(rps, int | float) or rps <= 0:
            problems.append(f"spec.http.rateLimit.requestsPerSecond must be above 0, got {rps!r}")
            rps = 1.0
        burst = raw["rateLimit"].get("burst") or max(1, int(rps))
        rate_limit = RateLimit(float(rps), int(burst))
    cors = None
    if raw.get("cors") is not None:
        c = raw["cors"]
        cors = Cors(
            allow_origins=tuple(c.get("allowOrigins") or ()),
            allow_methods=tuple(c.get("allowMethods") or ()),
            allow_headers=tuple(c.get("allowHeaders") or ()),
            expose_headers=tuple(c.get("exposeHeaders") or ()),
            allow_credentials=bool(c.get("allowCredentials", False)),
            max_age_seconds=c.get("maxAgeSeconds"),
        )
        if cors.allow_credentials and "*" in cors.allow_origins:
            problems.append(
                "spec.http.cors.allowCredentials cannot be combined with allowOrigins '*'"
            )
    return HttpRoute(
        host=str(raw.get("host") or "").lower(),
        path=path,
        strip_prefix=bool(raw.get("stripPrefix", False)),
        methods=methods,
        auth=auth,
        rate_limit=rate_limit,
        cors=cors,
    )


def _schedule(raw: Mapping[str, Any], problems: list[str]) -> Schedule:
    from .cron import CronError, parse_cron

    cron = str(raw.get("cron") or "")
    try:
        parse_cron(cron)
    except CronError as error:
        problems.append(f"spec.schedule.cron: {error}")
    time_zone = str(raw.get("timeZone") or "UTC")
    try:
        zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(
            f"spec.schedule.timeZone {time_zone!r} is not an IANA time zone (e.g. 'Asia/Shanghai')"
        )
    payload = raw.get("payload") or {}
    return Schedule(cron=cron, time_zone=time_zone, payload=payload)


def _object_storage(raw: Mapping[str, Any], problems: list[str]) -> ObjectStorage:
    where = "spec.objectStorage."
    bucket = str(raw.get("bucket") or "")
    if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", bucket):
        problems.append(
            f"{where}bucket {bucket!r} must be a bucket name: 3-63 lowercase letters, digits, "
            "'.' and '-'"
        )
    events = tuple(str(e) for e in raw.get("events") or DEFAULT_OBJECT_EVENTS)
    for event in events:
        if not OBJECT_EVENT_PATTERN.match(event):
            problems.append(
                f"{where}events: {event!r} is not an S3 event name such as "
                "'s3:ObjectCreated:*', 's3:ObjectCreated:Put' or 's3:ObjectRemoved:*'"
            )
    event_format = str(raw.get("eventFormat") or "s3")
    if event_format not in OBJECT_EVENT_FORMATS:
        problems.append(f"{where}eventFormat {event_format!r} must be one of s3, oss")
    filters = raw.get("filter") or {}
    token = None
    ref = (raw.get("auth") or {}).get("tokenSecretRef")
    if ref is not None:
        if not ref.get("name"):
            problems.append(f"{where}auth.tokenSecretRef.name is required")
        token = ApiKeyAuth(
            str(ref.get("name", "")), str(ref.get("key") or "token"), "Authorization"
        )
    return ObjectStorage(
        bucket=bucket,
        events=events,
        prefix=str(filters.get("prefix") or ""),
        suffix=str(filters.get("suffix") or ""),
        event_format=event_format,
        token=token,
    )


STREAM_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
SUBJECT_FILTER_PATTERN = re.compile(r"^[A-Za-z0-9_*>-]+(\.[A-Za-z0-9_*>-]+)*$")


def _secret_key_ref(raw: Any, where: str, default_key: str, problems: list[str]) -> SecretKeyRef:
    if not isinstance(raw, Mapping) or not raw.get("name"):
        problems.append(f"{where}.name is required (a Secret in the Trigger's namespace)")
        return SecretKeyRef("", default_key)
    return SecretKeyRef(str(raw["name"]), str(raw.get("key") or default_key))


def _stream(raw: Mapping[str, Any], problems: list[str]) -> StreamSource:
    where = "spec.stream."
    kinds = [key for key in ("nats", "redis") if raw.get(key) is not None]
    if len(kinds) != 1:
        problems.append(
            f"{where[:-1]} must have exactly one source: nats or redis "
            f"(found: {', '.join(kinds) or 'none'}); Kafka is not supported yet"
        )
    nats_source = redis_source = None
    if raw.get("nats") is not None:
        nats = raw["nats"]
        name = str(nats.get("stream") or "")
        if not STREAM_NAME_PATTERN.match(name):
            problems.append(f"{where}nats.stream {name!r} must be a JetStream stream name")
        subject = str(nats.get("subject") or "")
        if subject and not SUBJECT_FILTER_PATTERN.match(subject):
            problems.append(f"{where}nats.subject {subject!r} is not a NATS subject filter")
        url = nats.get("urlSecretRef")
        nats_source = NatsSource(
            name,
            subject,
            _secret_key_ref(url, f"{where}nats.urlSecretRef", "url", problems) if url else None,
        )
    if raw.get("redis") is not None:
        redis = raw["redis"]
        name = str(redis.get("stream") or "")
        if not name or len(name) > 512:
            problems.append(f"{where}redis.stream is required (the Redis Stream's key)")
        start = str(redis.get("startFrom") or "latest")
        if start not in ("latest", "earliest"):
            problems.append(f"{where}redis.startFrom {start!r} must be latest or earliest")
        redis_source = RedisSource(
            name,
            _secret_key_ref(
                redis.get("urlSecretRef"), f"{where}redis.urlSecretRef", "url", problems
            ),
            str(redis.get("group") or ""),
            start,
        )
    window = _duration(raw, "batchWindow", "0s", where, problems)
    if window > 300:
        problems.append(f"{where}batchWindow must be at most 5m, got {raw.get('batchWindow')!r}")
        window = 300.0
    max_age = _duration(raw, "maxRecordAge", "6h", where, problems)
    if not 60 <= max_age <= 7 * 24 * 3600:
        problems.append(f"{where}maxRecordAge must be from 1m to 168h")
        max_age = 6 * 3600.0
    return StreamSource(
        nats=nats_source,
        redis=redis_source,
        batch_size=_integer(raw, "batchSize", 10, 1, 1000, where, problems),
        batch_window_seconds=window,
        max_retry_attempts=_integer(raw, "maxRetryAttempts", 2, 0, 100, where, problems),
        max_record_age_seconds=max_age,
        on_failure=_destination(raw.get("onFailure"), f"{where}onFailure", problems),
        report_batch_item_failures=bool(raw.get("reportBatchItemFailures", False)),
        ordered=bool(raw.get("ordered", True)),
    )


def parse_trigger_spec(spec: Mapping[str, Any], namespace: str | None = None) -> TriggerSpec:
    problems: list[str] = []
    ref = spec.get("functionRef") or {}
    name = ref.get("name") if isinstance(ref, Mapping) else None
    if not name:
        problems.append("spec.functionRef.name is required")
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
    http = _http(spec["http"], problems) if spec.get("http") is not None else None
    schedule = _schedule(spec["schedule"], problems) if spec.get("schedule") is not None else None
    storage = spec.get("objectStorage")
    object_storage = _object_storage(storage, problems) if storage is not None else None
    stream = _stream(spec["stream"], problems) if spec.get("stream") is not None else None
    if problems:
        raise SpecInvalid(problems)
    return TriggerSpec(
        function_name=str(name),
        http=http if sources == ["http"] else None,
        schedule=schedule if sources == ["schedule"] else None,
        object_storage=object_storage if sources == ["objectStorage"] else None,
        stream=stream if sources == ["stream"] else None,
    )
