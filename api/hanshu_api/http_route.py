"""An http Trigger's route: host, path prefix, methods, API-key auth, rate limit, CORS, and
the payload format of the event a Function's event handler gets."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
HOST_PATTERN = re.compile(
    r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(:[0-9]+)?$"
)
HOST_MAX_LENGTH = 253
PATH_PATTERN = re.compile(r"^/[^?#\s]*$")
PATH_MAX_LENGTH = 1024
MAX_METHODS = 16
DEFAULT_PATH = "/"
DEFAULT_API_KEY_SECRET_KEY = "api-key"  # noqa: S105 - a key name, not a secret
DEFAULT_API_KEY_HEADER = "X-API-Key"
MIN_BURST = 1
MIN_CORS_MAX_AGE_SECONDS = 0
# API Gateway's payloadFormatVersion: 1.0 is the REST API proxy event (with Function
# Compute's names beside it), 2.0 the HTTP API / function URL event and its reply rules.
PAYLOAD_FORMAT_VERSIONS = ("1.0", "2.0")
DEFAULT_PAYLOAD_FORMAT_VERSION = "1.0"
# How the gateway tells the runtime which event to build, per route; a caller's own is
# dropped. = hanshu_runtime.http_events.PAYLOAD_FORMAT_HEADER (a unit test keeps them equal).
PAYLOAD_FORMAT_HEADER = "X-Hanshu-Payload-Format"
# API Gateway resource paths under the Trigger ("/todos/{id}", "/files/{path+}"): the event's
# resource / resourcePath and named pathParameters for the one a path matches, for
# frameworks that route on the resource (Chalice). Told to the runtime comma-joined in
# RESOURCES_HEADER (= hanshu_runtime.http_events.RESOURCES_HEADER), so no ',' in one.
_LITERAL = r"[A-Za-z0-9._~!$&'()*+;=:@-]+"  # a URI path segment's characters but ','

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
RESOURCE_PATTERN = re.compile(
    rf"^(/|(/({_LITERAL}|\{{{_NAME}\}}))+(/\{{{_NAME}\+\}})?|/\{{{_NAME}\+\}})$"
)
RESOURCE_MAX_LENGTH = 256
MAX_RESOURCES = 64
RESOURCES_HEADER = "X-Hanshu-Resources"


@dataclass(frozen=True, slots=True)
class ApiKeyAuth:
    secret_name: str
    secret_key: str = DEFAULT_API_KEY_SECRET_KEY
    header: str = DEFAULT_API_KEY_HEADER


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
    path: str = DEFAULT_PATH
    strip_prefix: bool = False
    methods: tuple[str, ...] = ()
    auth: ApiKeyAuth | None = None
    rate_limit: RateLimit | None = None
    cors: Cors | None = None
    payload_format_version: str = DEFAULT_PAYLOAD_FORMAT_VERSION
    resources: tuple[str, ...] = ()


def _methods(raw: Mapping[str, Any], problems: list[str]) -> tuple[str, ...]:
    # Lenient on case ('get' is GET) where the CRD's enum is not: dev mode reads YAML the
    # apiserver never saw, and the upper-case form is what both then agree on.
    methods = tuple(str(m).upper() for m in raw.get("methods") or ())
    if len(methods) > MAX_METHODS:
        problems.append(f"spec.http.methods lists {len(methods)}; at most {MAX_METHODS}")
    for method in methods:
        if method not in HTTP_METHODS:
            problems.append(
                f"spec.http.methods: {method!r} is not one of {', '.join(HTTP_METHODS)}"
            )
    return methods


def _auth(raw: Mapping[str, Any], problems: list[str]) -> ApiKeyAuth | None:
    if not raw.get("auth"):
        return None
    ref = raw["auth"].get("apiKeySecretRef") or {}
    if not ref.get("name"):
        problems.append("spec.http.auth.apiKeySecretRef.name is required")
    return ApiKeyAuth(
        str(ref.get("name", "")),
        str(ref.get("key") or DEFAULT_API_KEY_SECRET_KEY),
        str(raw["auth"].get("header") or DEFAULT_API_KEY_HEADER),
    )


def _rate_limit(raw: Mapping[str, Any], problems: list[str]) -> RateLimit | None:
    if not raw.get("rateLimit"):
        return None
    rps = raw["rateLimit"].get("requestsPerSecond")
    if isinstance(rps, bool) or not isinstance(rps, int | float) or rps <= 0:
        problems.append(f"spec.http.rateLimit.requestsPerSecond must be above 0, got {rps!r}")
        rps = 1.0
    burst = raw["rateLimit"].get("burst")
    if burst is None:
        burst = max(MIN_BURST, int(rps))
    elif isinstance(burst, bool) or not isinstance(burst, int) or burst < MIN_BURST:
        problems.append(
            f"spec.http.rateLimit.burst must be an integer of at least {MIN_BURST}, got {burst!r}"
        )
        burst = max(MIN_BURST, int(rps))
    return RateLimit(float(rps), int(burst))


def _cors(raw: Mapping[str, Any], problems: list[str]) -> Cors | None:
    if raw.get("cors") is None:
        return None
    c = raw["cors"]
    max_age = c.get("maxAgeSeconds")
    if max_age is not None and (
        isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0
    ):
        problems.append(
            f"spec.http.cors.maxAgeSeconds must be an integer of at least "
            f"{MIN_CORS_MAX_AGE_SECONDS}, got {max_age!r}"
        )
        max_age = None
    cors = Cors(
        allow_origins=tuple(c.get("allowOrigins") or ()),
        allow_methods=tuple(c.get("allowMethods") or ()),
        allow_headers=tuple(c.get("allowHeaders") or ()),
        expose_headers=tuple(c.get("exposeHeaders") or ()),
        allow_credentials=bool(c.get("allowCredentials", False)),
        max_age_seconds=max_age,
    )
    if cors.allow_credentials and "*" in cors.allow_origins:
        problems.append("spec.http.cors.allowCredentials cannot be combined with allowOrigins '*'")
    return cors


def _payload_format_version(raw: Mapping[str, Any], problems: list[str]) -> str:
    value = raw.get("payloadFormatVersion")
    if value is None:
        return DEFAULT_PAYLOAD_FORMAT_VERSION
    # Lenient where the CRD is not: YAML reads an unquoted 2.0 as a number (dev mode reads
    # manifests the apiserver never saw), and 2.0 is what was meant.
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = f"{float(value):.1f}"
    if value not in PAYLOAD_FORMAT_VERSIONS:
        problems.append(
            f"spec.http.payloadFormatVersion {value!r} must be one of "
            f"{', '.join(repr(v) for v in PAYLOAD_FORMAT_VERSIONS)} (a quoted string)"
        )
        return DEFAULT_PAYLOAD_FORMAT_VERSION
    return str(value)


def _resources(raw: Mapping[str, Any], problems: list[str]) -> tuple[str, ...]:
    given = raw.get("resources") or ()
    if not isinstance(given, list | tuple):
        problems.append("spec.http.resources must be a list of resource paths like '/todos/{id}'")
        return ()
    if len(given) > MAX_RESOURCES:
        problems.append(f"spec.http.resources lists {len(given)}; at most {MAX_RESOURCES}")
    resources = tuple(str(r) for r in given)
    for resource in resources:
        if len(resource) > RESOURCE_MAX_LENGTH or not RESOURCE_PATTERN.match(resource):
            problems.append(
                f"spec.http.resources: {resource!r} must be an API Gateway resource path: "
                "'/' or '/'-separated segments, each a name or '{param}', the last may be "
                "'{param+}' (for example '/todos/{id}'), in ASCII without ',' or '%'"
            )
    return resources


def parse_http_route(raw: Mapping[str, Any], problems: list[str]) -> HttpRoute:
    path = str(raw.get("path") or DEFAULT_PATH)
    if len(path) > PATH_MAX_LENGTH or not PATH_PATTERN.match(path):
        problems.append(
            f"spec.http.path {path!r} must start with '/' and hold no '?', '#' or whitespace "
            f"(at most {PATH_MAX_LENGTH} characters)"
        )
    host = str(raw.get("host") or "").lower()
    if host and (len(host) > HOST_MAX_LENGTH or not HOST_PATTERN.match(host)):
        problems.append(
            f"spec.http.host {host!r} must be a host name such as 'api.example.com' or "
            "'*.example.com', optionally with ':port'"
        )
    return HttpRoute(
        host=host,
        path=path,
        strip_prefix=bool(raw.get("stripPrefix", False)),
        methods=_methods(raw, problems),
        auth=_auth(raw, problems),
        rate_limit=_rate_limit(raw, problems),
        cors=_cors(raw, problems),
        payload_format_version=_payload_format_version(raw, problems),
        resources=_resources(raw, problems),
    )
