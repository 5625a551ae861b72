"""The error body: what the gateway, the runtime and the platform's own records say when an
invocation did not give an answer. AWS Lambda's runtime interface reports faults this way:

    {"errorType": "HandlerNotFound", "errorMessage": "...", "requestId": "3f2a..."}

with, from the gateway, extra fields that locate a refusal (``field``, ``limit``). The
runtime writes it by hand (it imports nothing of ours); everything else encodes and parses
it here, so the writer and the readers (the dispatcher's outcome, the stream consumers,
the CLI) cannot disagree on a key.

A body that is not one (not JSON, not an object, no ``errorType``: a Function's own error
page) parses to None: whoever reads it then describes the reply by its status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import bounded_json

# An error body is a small JSON object: a larger reply is described by its status alone.
MAX_ERROR_BODY_BYTES = 1024 * 1024
# What a record (an invocation's status, a failure record) keeps of a message.
MAX_RECORDED_MESSAGE_CHARS = 1000

_TYPE, _MESSAGE, _REQUEST_ID = "errorType", "errorMessage", "requestId"


@dataclass(frozen=True, slots=True)
class ErrorBody:
    error_type: str
    error_message: str = ""
    request_id: str | None = None  # absent from the body when None
    # More fields, after the three (the gateway's ``field`` and ``limit``); never one of
    # them: a detail cannot overwrite the error's type.
    detail: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {_TYPE: self.error_type, _MESSAGE: self.error_message}
        if self.request_id is not None:
            body[_REQUEST_ID] = self.request_id
        body.update((name, value) for name, value in self.detail.items() if name not in body)
        return body

    def encode(self) -> bytes:
        return json.dumps(self.as_dict()).encode()

    def recorded(self) -> ErrorBody:
        """The type and a bounded message: what an invocation's record keeps of an error
        (no request id, the record has its own; no detail)."""
        return ErrorBody(self.error_type, self.error_message[:MAX_RECORDED_MESSAGE_CHARS])

    @classmethod
    def parse(cls, raw: object) -> ErrorBody | None:
        """The error a body carries; None for anything else (not JSON, nested too deep,
        over MAX_ERROR_BODY_BYTES, not an object, no ``errorType``)."""
        if isinstance(raw, bytes | str):
            try:
                raw = bounded_json.loads(raw, what="the reply", max_bytes=MAX_ERROR_BODY_BYTES)
            except ValueError:
                return None
        if not isinstance(raw, Mapping) or _TYPE not in raw:
            return None
        request_id = raw.get(_REQUEST_ID)
        return cls(
            str(raw[_TYPE]),
            str(raw.get(_MESSAGE, "")),
            None if request_id is None else str(request_id),
            {k: v for k, v in raw.items() if k not in (_TYPE, _MESSAGE, _REQUEST_ID)},
        )


def reply_error(status: int, body: bytes, *, not_delivered: str) -> ErrorBody:
    """What a reply to an invocation says went wrong, for a record: its error body when it
    has one, else its status line. ``status`` 0 means no reply at all: then ``body`` is
    why, and ``not_delivered`` the type recorded."""
    if status == 0:
        return ErrorBody(not_delivered, body.decode(errors="replace")).recorded()
    carried = ErrorBody.parse(body)
    if carried is not None:
        return carried.recorded()
    return ErrorBody(f"HTTP{status}", f"the function answered {status}")
