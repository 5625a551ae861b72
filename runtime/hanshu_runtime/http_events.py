"""HTTP request -> API-gateway style event: payload format 1.0 (two dialects at once), or
API Gateway HTTP API's payload format 2.0 when the Trigger asks for it.

One 1.0 dict carries Function Compute's HTTP-trigger names (``queryParameters``, ``path``,
``headers``, ...) and Lambda's API Gateway REST proxy names, payload format 1.0
(``resource``, ``queryStringParameters``, ``requestContext.identity``, ...), so handlers
and adapters (Mangum, apig-wsgi, Powertools) written for either run unmodified. Single-value
maps carry the last value, ``multiValue*`` maps carry all of them. docs/runtime.md lists
every field and where its name comes from. The 2.0 event (``build_event_v2``) is the one
HTTP APIs and Lambda function URLs send (``rawPath``, ``cookies``, ``requestContext.http``),
for code written against it (Powertools' ``APIGatewayHttpResolver``,
``LambdaFunctionUrlResolver``; Mangum detects it by ``version``).
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, unquote

_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "application/graphql",
)
_TEXT_SUFFIXES = ("+json", "+xml")

# A Trigger routes every path under its prefix to the function: in API Gateway terms a
# greedy proxy resource, which is what Mangum / apig-wsgi deployments configure.
PROXY_RESOURCE = "/{proxy+}"
ROOT_RESOURCE = "/"
# What API Gateway's stage is when the URL carries none (Powertools reads it that way).
NO_STAGE = "$default"
# requestContext.identity as API Gateway sends it without IAM, Cognito or an API key.
_ANONYMOUS_IDENTITY: dict[str, str | None] = dict.fromkeys(
    (
        "cognitoIdentityPoolId",
        "accountId",
        "cognitoIdentityId",
        "caller",
        "apiKey",
        "apiKeyId",
        "accessKey",
        "cognitoAuthenticationType",
        "cognitoAuthenticationProvider",
        "userArn",
        "user",
        "principalOrgId",
        "clientCert",
    )
)
_CONTENT_TYPE = "content-type"
_USER_AGENT = "user-agent"
_FORWARDED_FOR = "x-forwarded-for"
_HOST = "host"
_NOTED_HEADERS = frozenset({_CONTENT_TYPE, _USER_AGENT, _FORWARDED_FOR, _HOST})
# requestTime's month names, fixed: strftime's %b follows the locale.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

PREFIX_HEADER = "X-Forwarded-Prefix"
# The gateway sets it per HTTP Trigger (payloadFormatVersion: "2.0") and drops a caller's
# own: = hanshu_api.http_route.PAYLOAD_FORMAT_HEADER (a unit test keeps them equal).
PAYLOAD_FORMAT_HEADER = "X-Hanshu-Payload-Format"
PAYLOAD_FORMAT_1 = "1.0"
PAYLOAD_FORMAT_2 = "2.0"
# The 2.0 event is API Gateway's for a Lambda integration behind a greedy route: every
# path under the Trigger's prefix, whatever the method.
PROXY_ROUTE_KEY = "ANY /{proxy+}"
ROOT_ROUTE_KEY = "ANY /"
# requestContext.accountId of a call with no IAM caller (a function URL with auth NONE).
ANONYMOUS_ACCOUNT = "anonymous"
# The Trigger's resource paths ("/todos/{id}"), comma-joined, when it lists any; the gateway
# sets it and drops a caller's own: = hanshu_api.http_route.RESOURCES_HEADER.
RESOURCES_HEADER = "X-Hanshu-Resources"
_COOKIE = "cookie"
_GATEWAY_WORDS = frozenset({PAYLOAD_FORMAT_HEADER.lower(), RESOURCES_HEADER.lower()})
MAX_PREFIX_LENGTH = 1024
# One or more "/segment"s: no empty, "." or ".." segment (a leading "//" makes every URL
# the app builds protocol-relative: off-site), no backslash (browsers read it as "/"), no
# query, fragment or whitespace.
_PREFIX = re.compile(r"(?:/(?!\.{1,2}(?:/|$))[^/\\?#\s]+)+")


@dataclass(slots=True)
class HttpRequest:
    """What the runtime read off the wire; no server types, so events are built purely.

    ``path`` and ``raw_query`` are still percent-encoded, exactly as received: each
    consumer decodes them once. ``prefix`` is the decoded path the app is mounted at
    (a stripped Trigger prefix), "" when there is none.
    """

    method: str
    path: str
    raw_query: str
    headers: Iterable[tuple[str, str]]
    body: bytes
    client_ip: str
    scheme: str = "http"
    protocol: str = "HTTP/1.1"
    prefix: str = ""
    host: str = ""  # the Host header: the caller's (the gateway passes it on)
    payload_format: str = PAYLOAD_FORMAT_1  # the Trigger's payloadFormatVersion
    resources: str = ""  # the Trigger's resource paths, comma-joined (RESOURCES_HEADER)


def server_address(host: str, scheme: str, fallback: tuple[str, int]) -> tuple[str, int]:
    """The (name, port) a request was addressed to, from its Host header, as gunicorn
    sets SERVER_NAME and SERVER_PORT: apps that build URLs from these (rather than from
    HTTP_HOST) then name the caller's host, not the replica's address. ``fallback`` when
    there is no Host (HTTP/1.0) or its port is not a number."""
    if not host:
        return fallback
    name, colon, port = host.rpartition(":")
    if not colon or name.endswith(":") or (name.startswith("[") != name.endswith("]")):
        name, port = host, ""  # no port (an IPv6 literal's colons are not one)
    if not port:
        return name, 443 if scheme == "https" else 80
    return (name, int(port)) if port.isdigit() and len(port) <= 5 else fallback


def mount_prefix(header: str | None) -> str:
    """``X-Forwarded-Prefix`` as a mount point, or "" when absent or unsafe to use.

    Apps put it in front of every URL they build (redirects, ``url_for``, the OpenAPI
    link), so anything that could turn such a URL into another origin or a header break
    is refused rather than repaired.
    """
    if not header:
        return ""
    prefix = header.rstrip("/")
    if len(prefix) <= MAX_PREFIX_LENGTH and prefix.isprintable() and _PREFIX.fullmatch(prefix):
        return prefix
    return ""


def _is_text(content_type: str | None) -> bool:
    if not content_type:
        return True
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type.startswith(_TEXT_TYPES) or media_type.endswith(_TEXT_SUFFIXES)


def encode_body(body: bytes, content_type: str | None) -> tuple[str | None, bool]:
    """Text bodies go as str; anything else (or text that is not UTF-8) as base64."""
    if not body:
        return None, False
    if _is_text(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def _single_and_multi(
    pairs: Iterable[tuple[str, str]],
) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def _read_headers(
    pairs: Iterable[tuple[str, str]],
) -> tuple[dict[str, str], dict[str, list[str]], dict[str, str]]:
    """Both header maps (names as sent) and the few values the event reads, in one pass:
    this runs on every request."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    noted: dict[str, str] = {}
    for name, value in pairs:
        single[name] = value
        values = multi.get(name)
        if values is None:
            multi[name] = [value]
        else:
            values.append(value)
        lower = name.lower()
        if lower in _NOTED_HEADERS:
            noted[lower] = value
    return single, multi, noted


def source_ip(forwarded_for: str | None, peer: str) -> str:
    """The caller's address as the platform saw it.

    The gateway appends the address that connected to it to ``X-Forwarded-For``: that last
    hop is the one the platform vouches for (API Gateway's ``sourceIp``); earlier hops are
    whatever the caller claimed. Called directly (no gateway), the peer is the caller.
    """
    if forwarded_for:
        last = forwarded_for.rpartition(",")[2].strip()
        if last:
            return last
    return peer


@lru_cache(maxsize=2)
def request_time(epoch_seconds: int) -> str:
    """API Gateway's ``requestTime`` (CLF, ``10/Feb/2024:13:40:02 +0000``); cached because
    every request in the same second shares it."""
    t = time.gmtime(epoch_seconds)
    return (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


@dataclass(frozen=True, slots=True)
class _Resource:
    template: str
    segments: tuple[str, ...]  # literal segments, "{name}" or a last "{name+}"

    @property
    def specificity(self) -> tuple[int, ...]:
        """API Gateway's order: at each position a literal beats a {param}, which beats a
        greedy {param+}; sorted on this, the first match is the most specific."""
        ranks = [2 if s.endswith("+}") else 1 if s.startswith("{") else 0 for s in self.segments]
        return (*ranks, 3)  # a shorter template after a longer one of the same start

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """The named path parameters when ``segments`` (decoded) match, else None."""
        found: dict[str, str] = {}
        for index, part in enumerate(self.segments):
            if part.endswith("+}"):
                rest = segments[index:]
                if not rest:
                    return None
                found[part[1:-2]] = "/".join(rest)
                return found
            if index >= len(segments):
                return None
            if part.startswith("{"):
                found[part[1:-1]] = segments[index]
            elif part != segments[index]:
                return None
        return found if len(segments) == len(self.segments) else None


@lru_cache(maxsize=64)
def _resources(header: str) -> tuple[_Resource, ...]:
    """A Trigger's resource paths, most specific first; parsed once per distinct list."""
    resources = [
        _Resource(t, tuple(s for s in t.split("/") if s))
        for t in (part.strip() for part in header.split(","))
        if t.startswith("/")
    ]
    return tuple(sorted(resources, key=lambda r: r.specificity))


def match_resource(resources: str, raw_path: str) -> tuple[str, dict[str, str]] | None:
    """(resource path, path parameters) of the most specific of the Trigger's resource
    paths that the path matches, or None (then the greedy /{proxy+} stands)."""
    if not resources:
        return None
    segments = [unquote(s) for s in raw_path.split("/") if s]
    for resource in _resources(resources):
        found = resource.match(segments)
        if found is not None:
            return resource.template, found
    return None


def build_event(request: HttpRequest, request_id: str) -> dict[str, Any]:
    headers, multi_headers, noted = _read_headers(request.headers)
    query, multi_query = (
        _single_and_multi(parse_qsl(request.raw_query, keep_blank_values=True))
        if request.raw_query
        else ({}, {})
    )
    body, is_base64 = encode_body(request.body, noted.get(_CONTENT_TYPE))
    path = unquote(request.path)
    matched = match_resource(request.resources, request.path)
    if matched is not None:
        resource, path_parameters = matched
    elif path == ROOT_RESOURCE:
        # Lambda sends null path parameters here; Function Compute's map is always a map.
        resource, path_parameters = ROOT_RESOURCE, {}
    else:
        resource, path_parameters = PROXY_RESOURCE, {"proxy": path[1:]}
    prefix = request.prefix
    caller = source_ip(noted.get(_FORWARDED_FOR), request.client_ip)
    now = time.time()
    return {
        "resource": resource,
        "path": path,
        "rawPath": request.path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        # One parse, two names: Function Compute's maps are always maps, Lambda's are null
        # when the URL has no query (code tests `if event["queryStringParameters"]`).
        "queryParameters": query,
        "multiValueQueryParameters": multi_query,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "rawQueryString": request.raw_query,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "body": body,
        "isBase64Encoded": is_base64,
        "requestContext": {
            "requestId": request_id,
            "resourcePath": resource,
            "httpMethod": request.method,
            # API Gateway's stage: the part of the URL in front of ``path``. The stripped
            # Trigger prefix is exactly that, so adapters that build URLs from the stage
            # (Powertools' OpenAPI servers) keep them under the prefix the client used.
            "path": prefix + path,
            "stage": prefix[1:] or NO_STAGE,
            "protocol": request.protocol,
            "domainName": noted.get(_HOST, ""),
            "identity": {
                **_ANONYMOUS_IDENTITY,
                "sourceIp": caller,
                "userAgent": noted.get(_USER_AGENT),
            },
            "requestTime": request_time(int(now)),
            "requestTimeEpoch": int(now * 1000),
            # Hanshu's own names, kept for handlers written against them.
            "pathPrefix": prefix,
            "sourceIp": caller,
            "scheme": request.scheme,
        },
    }


def build_event_v2(request: HttpRequest, request_id: str) -> dict[str, Any]:
    """API Gateway HTTP API's payload format 2.0 event, as a Lambda function URL sends it.

    Header names lower-cased and repeated values comma-joined, cookies in their own list,
    query values decoded and comma-joined, the path below the Trigger's prefix (a stripped
    prefix is a mount point, not a stage: ``stage`` is ``$default``, as for a function URL).
    Fields API Gateway leaves out when empty (query, body, path parameters) are left out.
    """
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        lower = name.lower()
        if lower == _COOKIE:
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
        elif lower in _GATEWAY_WORDS:
            continue  # the gateway's word to the runtime, not the caller's
        elif lower in headers:
            headers[lower] = f"{headers[lower]},{value}"
        else:
            headers[lower] = value
    path = unquote(request.path)
    caller = source_ip(headers.get(_FORWARDED_FOR), request.client_ip)
    matched = match_resource(request.resources, request.path)
    route_key = ROOT_ROUTE_KEY if path == ROOT_RESOURCE else PROXY_ROUTE_KEY
    parameters: dict[str, str] = {"proxy": path[1:]} if path != ROOT_RESOURCE else {}
    if matched is not None:
        route_key, parameters = f"ANY {matched[0]}", matched[1]
    now = time.time()
    host = headers.get(_HOST, "")
    event: dict[str, Any] = {
        "version": PAYLOAD_FORMAT_2,
        "routeKey": route_key,
        "rawPath": request.path,
        "rawQueryString": request.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": ANONYMOUS_ACCOUNT,
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
            "http": {
                "method": request.method,
                "path": path,
                "protocol": request.protocol,
                "sourceIp": caller,
                "userAgent": headers.get(_USER_AGENT, ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": NO_STAGE,
            "time": request_time(int(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if request.raw_query:
        query: dict[str, str] = {}
        for name, value in parse_qsl(request.raw_query, keep_blank_values=True):
            query[name] = f"{query[name]},{value}" if name in query else value
        event["queryStringParameters"] = query
    if parameters:
        event["pathParameters"] = parameters
    body, is_base64 = encode_body(request.body, headers.get(_CONTENT_TYPE))
    if body is not None:
        event["body"] = body
        event["isBase64Encoded"] = is_base64
    return event
