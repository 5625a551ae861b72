"""HTTP request -> API-gateway style event, and the context object handlers receive.

The event has the shape of Function Compute's HTTP trigger and Lambda's proxy integration:
single-value maps carry the last value, ``multiValue*`` maps carry all of them.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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

PREFIX_HEADER = "X-Forwarded-Prefix"
MAX_PREFIX_LENGTH = 1024
# One or more "/segment"s: no empty, "." or ".." segment (a leading "//" makes every URL
# the app builds protocol-relative: off-site), no backslash (browsers read it as "/"), no
# query, fragment or whitespace.
_PREFIX = re.compile(r"(?:/(?!\.{1,2}(?:/|$))[^/\\?#\s]+)+")


@dataclass(slots=True)
class HttpRequest:
    """What the runtime read off the wire; no aiohttp types, so events are built purely.

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


def build_event(
    request: HttpRequest,
    request_id: str,
    path_parameters: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    headers, multi_headers = _single_and_multi(request.headers)
    content_type = next(
        (value for name, value in headers.items() if name.lower() == "content-type"), None
    )
    query, multi_query = (
        _single_and_multi(parse_qsl(request.raw_query, keep_blank_values=True))
        if request.raw_query
        else ({}, {})
    )
    body, is_base64 = encode_body(request.body, content_type)
    path = unquote(request.path)
    return {
        "path": path,
        "rawPath": request.path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryParameters": query,
        "multiValueQueryParameters": multi_query,
        "rawQueryString": request.raw_query,
        "pathParameters": dict(path_parameters or {}),
        "body": body,
        "isBase64Encoded": is_base64,
        "requestContext": {
            "requestId": request_id,
            "httpMethod": request.method,
            # Lambda's REST shape: the path as the client asked for it, mount prefix included.
            "path": request.prefix + path,
            "pathPrefix": request.prefix,
            "protocol": request.protocol,
            "sourceIp": request.client_ip,
            "scheme": request.scheme,
            "requestTimeEpoch": int(time.time() * 1000),
        },
    }


@dataclass(slots=True)
class Context:
    """The ``context`` argument: Function Compute / Lambda names, so ported code runs."""

    request_id: str
    function_name: str
    function_version: str
    memory_limit_in_mb: int
    deadline_monotonic: float
    logger: logging.Logger = field(repr=False)

    @property
    def aws_request_id(self) -> str:
        return self.request_id

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline_monotonic - time.monotonic()) * 1000))
