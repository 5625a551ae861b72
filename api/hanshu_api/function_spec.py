"""The Function spec as a typed value: its constants (the CRD's patterns, enums, bounds and
defaults are generated from them by hack/gen_crds.py), its types and its parser."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .destination import Destination, parse_destination
from .durations import parse_duration
from .function_contract import HANDLER_PATTERN, RESERVED_ENV_PREFIX
from .quantities import parse_quantity
from .spec_fields import IntField, SpecInvalid, duration, integer
from .versions import Alias, parse_aliases

HANDLER_MAX_LENGTH = 253
FILE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# A ConfigMap holds the inline files; the bound also keeps the CEL rule on names cheap.
MAX_INLINE_FILES = 64
HANDLER_TYPES = ("event", "wsgi", "asgi")
DEFAULT_HANDLER_TYPE = "event"

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

TIMEOUT_SECONDS = IntField("timeoutSeconds", 1, 3600, DEFAULT_TIMEOUT_SECONDS)
CONCURRENCY = IntField("concurrency", 1, 1000, DEFAULT_CONCURRENCY)
MIN_REPLICAS = IntField("minReplicas", 0, None, DEFAULT_MIN_REPLICAS)
MAX_REPLICAS = IntField("maxReplicas", 1, None, DEFAULT_MAX_REPLICAS)
TARGET_CONCURRENCY = IntField("targetConcurrency", 1, None, DEFAULT_TARGET_CONCURRENCY)
ASYNC_RETRY_ATTEMPTS = IntField(
    "maxRetryAttempts", 0, MAX_RETRY_ATTEMPTS, DEFAULT_MAX_RETRY_ATTEMPTS
)


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
    scale_to_zero_grace_seconds: float = parse_duration(DEFAULT_SCALE_TO_ZERO_GRACE)
    scale_down_delay_seconds: float = parse_duration(DEFAULT_SCALE_DOWN_DELAY)


@dataclass(frozen=True, slots=True)
class AsyncPolicy:
    max_retry_attempts: int = DEFAULT_MAX_RETRY_ATTEMPTS
    max_event_age_seconds: float = MAX_EVENT_AGE_SECONDS
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
    handler_type: str = DEFAULT_HANDLER_TYPE
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
    # Names pointing at published versions (docs/versions.md); not part of a snapshot.
    aliases: tuple[Alias, ...] = ()

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


def _is_handler(entry: object) -> bool:
    return (
        isinstance(entry, str)
        and len(entry) <= HANDLER_MAX_LENGTH
        and HANDLER_PATTERN.fullmatch(entry) is not None
    )


def _scaling(raw: Mapping[str, Any], problems: list[str]) -> Scaling:
    where = "spec.scaling."
    scaling = Scaling(
        min_replicas=integer(raw, MIN_REPLICAS, where, problems),
        max_replicas=integer(raw, MAX_REPLICAS, where, problems),
        target_concurrency=integer(raw, TARGET_CONCURRENCY, where, problems),
        scale_to_zero_grace_seconds=duration(
            raw, "scaleToZeroGracePeriod", DEFAULT_SCALE_TO_ZERO_GRACE, where, problems
        ),
        scale_down_delay_seconds=duration(
            raw, "scaleDownDelay", DEFAULT_SCALE_DOWN_DELAY, where, problems
        ),
    )
    if scaling.min_replicas > scaling.max_replicas:
        problems.append(
            f"spec.scaling.minReplicas ({scaling.min_replicas}) must not be greater than "
            f"spec.scaling.maxReplicas ({scaling.max_replicas})"
        )
    return scaling


def _async_policy(raw: Mapping[str, Any], problems: list[str]) -> AsyncPolicy:
    where = "spec.async."
    max_age = duration(raw, "maxEventAge", DEFAULT_MAX_EVENT_AGE, where, problems)
    if not MIN_EVENT_AGE_SECONDS <= max_age <= MAX_EVENT_AGE_SECONDS:
        problems.append(f"{where}maxEventAge must be from 1m to 6h, got {raw.get('maxEventAge')!r}")
        max_age = MAX_EVENT_AGE_SECONDS
    destinations = raw.get("destinations") or {}
    return AsyncPolicy(
        max_retry_attempts=integer(raw, ASYNC_RETRY_ATTEMPTS, where, problems),
        max_event_age_seconds=max_age,
        on_success=parse_destination(
            destinations.get("onSuccess"), f"{where}destinations.onSuccess", problems
        ),
        on_failure=parse_destination(
            destinations.get("onFailure"), f"{where}destinations.onFailure", problems
        ),
    )


def _inline_code(
    inline: Mapping[str, Any], handler: str, initializer: str | None, problems: list[str]
) -> Code:
    if len(inline) > MAX_INLINE_FILES:
        problems.append(
            f"spec.code.inline has {len(inline)} files; at most {MAX_INLINE_FILES} fit "
            "(use a ConfigMap or an image for more)"
        )
    for name in inline:
        if not FILE_NAME_PATTERN.match(name):
            problems.append(
                f"spec.code.inline file name {name!r} must be a plain file name such as "
                "'index.py' (no '/')"
            )
    for role, entry in (("handler", handler), ("initializer", initializer)):
        if entry and HANDLER_PATTERN.fullmatch(entry):
            module = module_of(entry)
            if "." in module:
                problems.append(
                    f"spec.{role} names module '{module}', a package path, but inline code "
                    "is flat files; use a top-level module or an image"
                )
            elif f"{module}.py" not in inline:
                files = ", ".join(sorted(inline)) or "no files"
                problems.append(
                    f"spec.{role} '{entry}' needs {module}.py in spec.code.inline (it has {files})"
                )
    return Code(inline=dict(inline))


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
        return _inline_code(inline, handler, initializer, problems)
    config_map = raw.get("configMap")
    if config_map is not None:
        name = config_map.get("name") if isinstance(config_map, Mapping) else None
        if not name:
            problems.append("spec.code.configMap.name is required")
        return Code(config_map=name)
    return Code(image=str(raw["image"]))


def _env(spec: Mapping[str, Any], problems: list[str]) -> tuple[Mapping[str, Any], ...]:
    env = tuple(spec.get("env") or ())
    for entry in env:
        name = str(entry.get("name", ""))
        if name.startswith(RESERVED_ENV_PREFIX):
            problems.append(
                f"spec.env name {entry['name']!r}: names starting with "
                f"{RESERVED_ENV_PREFIX} are reserved"
            )
        if "value" in entry and "valueFrom" in entry:
            problems.append(f"spec.env {name!r} takes value or valueFrom, not both")
    return env


def _resources(spec: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    resources = dict(spec.get("resources") or {})
    for section in ("requests", "limits"):
        for resource, value in (resources.get(section) or {}).items():
            try:
                parse_quantity(value)
            except ValueError as error:
                problems.append(f"spec.resources.{section}.{resource}: {error}")
    return resources


def parse_function_spec(spec: Mapping[str, Any]) -> FunctionSpec:
    problems: list[str] = []
    given = spec.get("handler")
    handler = given if isinstance(given, str) and _is_handler(given) else ""
    if not handler:
        problems.append(
            f"spec.handler {given!r} must be 'module.function' (e.g. 'index.handler') "
            f"or 'module:object' (e.g. 'app:app'), at most {HANDLER_MAX_LENGTH} characters"
        )
    handler_type = spec.get("handlerType", DEFAULT_HANDLER_TYPE)
    if handler_type not in HANDLER_TYPES:
        problems.append(
            f"spec.handlerType {handler_type!r} must be one of {', '.join(HANDLER_TYPES)}"
        )
    initializer = spec.get("initializer") or None
    if initializer is not None and not _is_handler(initializer):
        problems.append(f"spec.initializer {initializer!r} must be 'module.function'")
    code = _code(spec.get("code") or {}, handler, initializer, problems)
    parsed = FunctionSpec(
        handler=handler,
        handler_type=handler_type if handler_type in HANDLER_TYPES else DEFAULT_HANDLER_TYPE,
        code=code,
        initializer=initializer,
        env=_env(spec, problems),
        env_from=tuple(spec.get("envFrom") or ()),
        resources=_resources(spec, problems),
        timeout_seconds=integer(spec, TIMEOUT_SECONDS, "spec.", problems),
        concurrency=integer(spec, CONCURRENCY, "spec.", problems),
        scaling=_scaling(spec.get("scaling") or {}, problems),
        service_account_name=spec.get("serviceAccountName") or None,
        node_selector=dict(spec.get("nodeSelector") or {}),
        tolerations=tuple(spec.get("tolerations") or ()),
        async_policy=_async_policy(spec.get("async") or {}, problems),
        aliases=parse_aliases(spec.get("aliases"), problems),
    )
    if problems:
        raise SpecInvalid(problems)
    return parsed
