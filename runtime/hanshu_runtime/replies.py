"""Handler return value -> HTTP reply. Pure; a wrong shape raises ``InvalidResponse``."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .faults import InvalidResponse

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
BINARY_TYPE = "application/octet-stream"
_PROXY_KEYS = frozenset(
    {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded", "cookies"}
)


@dataclass(slots=True)
class HttpReply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def _header_value(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidResponse(
            f"header {name!r} has a {type(value).__name__} value; header values must be strings"
        )
    return str(value)


def _proxy_headers(reply: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``headers`` and ``multiValueHeaders`` merged as API Gateway merges them: every value
    of both, except that a name-value pair given in both is sent once. So Mangum's reply
    (single headers in one map, repeated ones such as two Set-Cookie in the other) arrives
    whole."""
    single = reply.get("headers") or {}
    if not isinstance(single, Mapping):
        raise InvalidResponse("'headers' must be an object of header name to string value")
    multi = reply.get("multiValueHeaders") or {}
    if not isinstance(multi, Mapping):
        raise InvalidResponse("'multiValueHeaders' must be an object of header name to a list")
    multi_values: list[tuple[str, str]] = []
    for name, values in multi.items():
        if not isinstance(values, list):
            raise InvalidResponse(f"multiValueHeaders[{name!r}] must be a list of strings")
        multi_values.extend((str(name), _header_value(name, value)) for value in values)
    headers: list[tuple[str, str]] = []
    if single:
        # Header names are case-insensitive: "Set-Cookie" here and "set-cookie" there
        # are the same header.
        given_in_multi = {(name.lower(), value) for name, value in multi_values}
        for name, value in single.items():
            text = _header_value(name, value)
            if (str(name).lower(), text) not in given_in_multi:
                headers.append((str(name), text))
    headers.extend(multi_values)
    cookies = reply.get("cookies") or []
    if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
        raise InvalidResponse("'cookies' must be a list of Set-Cookie strings")
    headers.extend(("Set-Cookie", cookie) for cookie in cookies)
    return headers


def _proxy_reply(reply: Mapping[str, Any]) -> HttpReply:
    unknown = sorted(set(reply) - _PROXY_KEYS)
    if unknown:
        raise InvalidResponse(
            f"the reply has statusCode and unknown keys {unknown}; a proxy reply may only "
            f"have {sorted(_PROXY_KEYS)}"
        )
    status = reply["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise InvalidResponse(f"statusCode must be an integer from 100 to 599, got {status!r}")
    headers = _proxy_headers(reply)
    body = reply.get("body")
    is_base64 = reply.get("isBase64Encoded", False)
    if not isinstance(is_base64, bool):
        raise InvalidResponse("'isBase64Encoded' must be true or false")
    has_type = any(name.lower() == "content-type" for name, _ in headers)
    if body is None:
        payload = b""
    elif isinstance(body, bytes):
        payload = body
        if not has_type:
            headers.append(("Content-Type", BINARY_TYPE))
    elif isinstance(body, str) and is_base64:
        try:
            payload = base64.b64decode(body, validate=True)
        except binascii.Error:
            raise InvalidResponse("'body' is marked isBase64Encoded but is not base64") from None
        if not has_type:
            headers.append(("Content-Type", BINARY_TYPE))
    elif isinstance(body, str):
        payload = body.encode("utf-8")
        if not has_type:
            headers.append(("Content-Type", TEXT_TYPE))
    else:
        raise InvalidResponse(
            f"'body' is a {type(body).__name__}; it must be a string (JSON-encode objects "
            "yourself, or return the object without statusCode)"
        )
    return HttpReply(status, headers, payload)


def to_json_bytes(value: Any) -> bytes:
    try:
        return json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError) as error:
        raise InvalidResponse(f"the reply is not JSON serializable: {error}") from None


def build_reply(result: Any) -> HttpReply:
    """What a handler may return: a proxy reply dict, str, bytes, JSON-able dict/list, None."""
    if isinstance(result, dict) and "statusCode" in result:
        return _proxy_reply(result)
    if result is None:
        return HttpReply(204)
    if isinstance(result, str):
        return HttpReply(200, [("Content-Type", TEXT_TYPE)], result.encode("utf-8"))
    if isinstance(result, bytes | bytearray | memoryview):
        return HttpReply(200, [("Content-Type", BINARY_TYPE)], bytes(result))
    if isinstance(result, dict | list):
        return HttpReply(200, [("Content-Type", JSON_TYPE)], to_json_bytes(result))
    raise InvalidResponse(
        f"the handler returned a {type(result).__name__}; return a dict with statusCode, "
        "a str, bytes, a JSON-able dict or list, or None"
    )


def build_reply_v2(result: Any) -> HttpReply:
    """Payload format 2.0's reply rules, as API Gateway HTTP APIs and function URLs apply
    them: a dict with ``statusCode`` is a proxy reply (``cookies`` become Set-Cookie
    headers); any other JSON value is a 200 ``application/json`` body: the value as JSON,
    a string as it is. ``bytes`` (not JSON on Lambda) stay Hanshu's 200 octet-stream."""
    if isinstance(result, dict) and "statusCode" in result:
        return _proxy_reply(result)
    if isinstance(result, bytes | bytearray | memoryview):
        return HttpReply(200, [("Content-Type", BINARY_TYPE)], bytes(result))
    if isinstance(result, str):
        return HttpReply(200, [("Content-Type", JSON_TYPE)], result.encode("utf-8"))
    if result is None or isinstance(result, dict | list | int | float):
        return HttpReply(200, [("Content-Type", JSON_TYPE)], to_json_bytes(result))
    raise InvalidResponse(
        f"the handler returned a {type(result).__name__}; with payload format 2.0 return a "
        "dict with statusCode, or any JSON value (dict, list, str, number, bool, None)"
    )
