"""Calling a Function through the gateway, as a user's client would (plain HTTP)."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hanshu_api.error_body import ErrorBody
from hanshu_api.invocation_record import FINAL_STATES as FINAL_STATES
from hanshu_api.invocations import ASYNC as ASYNC
from hanshu_api.invocations import HTTP_INVOCATION_TYPE

from .errors import CliError

ASYNC_HEADER = HTTP_INVOCATION_TYPE


@dataclass
class Reply:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    seconds: float
    url: str

    @property
    def request_id(self) -> str:
        return self.header("X-Request-Id") or "-"

    @property
    def cold_start(self) -> bool:
        return self.header("X-Hanshu-Cold-Start").lower() == "true"

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), "")

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass(frozen=True)
class Call:
    url: str
    method: str = "GET"
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def payload(data: str | None) -> bytes | None:
    """``--data``: JSON text, or ``@file`` for a file's content."""
    if data is None:
        return None
    if data.startswith("@"):
        try:
            return Path(data[1:]).read_bytes()
        except OSError as bad:
            raise CliError(f"cannot read {data[1:]}: {bad.strerror}") from bad
    return data.encode()


def parse_headers(given: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for header in given:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise CliError(f"--header {header!r} must be 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def join_url(base: str, path: str) -> str:
    if not path:
        return base
    return base.rstrip("/") + "/" + path.lstrip("/")


def send(call: Call, timeout: float) -> Reply:
    """One request; any HTTP status is a Reply, only a failed connection is an error."""
    headers = dict(call.headers)
    if call.body is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(  # noqa: S310 (the URL is the user's gateway)
        call.url, data=call.body, headers=headers, method=call.method
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            body = answer.read()
            status, reason, got = answer.status, answer.reason, dict(answer.headers.items())
    except urllib.error.HTTPError as answer:
        body = answer.read()
        status, reason, got = answer.code, str(answer.reason), dict(answer.headers.items())
    except (urllib.error.URLError, http.client.HTTPException, OSError) as bad:
        why = getattr(bad, "reason", None) or bad
        raise CliError(f"cannot reach the gateway at {call.url}: {why}") from bad
    return Reply(status, reason, got, body, time.monotonic() - started, call.url)


def accepted(reply: Reply) -> tuple[str, str]:
    """(invocation id, status URL) of a 202 to an async call."""
    invocation_id = reply.header("X-Hanshu-Invocation-Id")
    location = reply.header("Location")
    if not invocation_id or not location:
        try:
            document = json.loads(reply.body)
        except ValueError:
            document = {}
        invocation_id = invocation_id or str(document.get("invocationId", ""))
        location = location or str(document.get("status", ""))
    if not invocation_id:
        raise CliError(f"the gateway accepted the call but named no invocation ({reply.url})")
    return invocation_id, urllib.parse.urljoin(reply.url, location)


def invocation_state(document: Mapping[str, object]) -> str:
    return str(document.get("state", ""))


def failure_of(invocation_id: str, document: Mapping[str, object]) -> str:
    """An invocation that did not succeed, in a line: its state and its error (the last
    attempt's while it is retrying), when the status has one."""
    error = ErrorBody.parse(document.get("error") or document.get("lastError") or {})
    described = f"{error.error_type}: {error.error_message}" if error else ""
    return f"invocation {invocation_id} {invocation_state(document)}: {described}".rstrip(": ")
