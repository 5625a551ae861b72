"""The invocation record: an async invocation's progress, as the dispatcher writes it to the
status bucket (a JetStream key-value bucket, keyed by the invocation id) and the gateway
serves it at ``GET /_hanshu/invocations/{id}``. On the wire it is JSON:

    {"invocationId": "3f2a...", "namespace": "shop", "function": "checkout",
     "trigger": "checkout-http", "authHeader": null, "invocationType": "Async",
     "state": "Retrying", "attempts": 1, "enqueuedAt": "2026-...Z", "updatedAt": "...",
     "startedAt": "...", "lastError": {"errorType": "HTTP500", "errorMessage": "..."},
     "nextAttemptAt": "..."}

then, once final, ``finishedAt``, ``result`` (the reply, bounded), ``error``, ``condition``
(Lambda's destination condition) and ``destination`` (whether its record went out). A key
that is None is not written, but ``result`` is null when the last attempt got no reply.
Keys this version does not know (a newer dispatcher's, in a rolling upgrade) are kept, so
reading and writing a record back never loses one.

The transitions (``running``, ``retrying``, ``finished``) are pure: the dispatcher decides,
this module says what the record then holds.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .error_body import ErrorBody

# What the record keeps of a reply: enough to read an answer or an error, bounded so a
# large reply cannot fill the bucket.
MAX_RESULT_BODY_BYTES = 32 * 1024


class State(enum.StrEnum):
    ENQUEUED = "Enqueued"
    RUNNING = "Running"
    RETRYING = "Retrying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    EXPIRED = "Expired"

    @property
    def final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({State.SUCCEEDED, State.FAILED, State.EXPIRED})


class DestinationState(enum.StrEnum):
    """Where an outcome's destination record stands."""

    PENDING = "Pending"  # saved before sending: whoever runs the message again sends it
    SENT = "Sent"
    FAILED = "Failed"


class RecordInvalid(ValueError):
    """A stored record that cannot be read: the message names the field."""


def now_iso(now: float) -> str:
    return (
        datetime.datetime.fromtimestamp(now, datetime.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass(frozen=True, slots=True)
class Origin:
    """Who may read a status: the Trigger that took the call, and its key header if any."""

    namespace: str
    function: str
    trigger: str | None = None
    auth_header: str | None = None
    # The published version the call runs on, decided when it is stored (an alias's pick
    # then); None for $LATEST. Written as "version" only when set.
    version: int | None = None


@dataclass(frozen=True, slots=True)
class InvocationResult:
    """The reply an attempt got: its status and its body, cut at MAX_RESULT_BODY_BYTES."""

    status_code: int
    body: str  # the text, or base64 when the reply was not UTF-8
    is_base64_encoded: bool = False
    truncated: bool = False

    @classmethod
    def of(cls, status: int, body: bytes) -> InvocationResult:
        kept = body[:MAX_RESULT_BODY_BYTES]
        truncated = len(body) > len(kept)
        try:
            return cls(status, kept.decode(), False, truncated)
        except UnicodeDecodeError:
            return cls(status, base64.b64encode(kept).decode(), True, truncated)

    def payload(self) -> bytes:
        return base64.b64decode(self.body) if self.is_base64_encoded else self.body.encode()

    def encode(self) -> dict[str, Any]:
        return {
            "statusCode": self.status_code,
            "truncated": self.truncated,
            "body": self.body,
            "isBase64Encoded": self.is_base64_encoded,
        }

    @classmethod
    def parse(cls, raw: Any) -> InvocationResult:
        fields = _object(raw, "result")
        status = fields.get("statusCode")
        body = fields.get("body", "")
        if isinstance(status, bool) or not isinstance(status, int) or not isinstance(body, str):
            raise RecordInvalid("result must have a whole statusCode and a string body")
        return cls(status, body, bool(fields.get("isBase64Encoded")), bool(fields.get("truncated")))


# The keys this version writes, in the order it writes them.
_KNOWN = (
    "invocationId",
    "namespace",
    "function",
    "trigger",
    "authHeader",
    "version",
    "invocationType",
    "state",
    "attempts",
    "enqueuedAt",
    "updatedAt",
    "jobId",
    "startedAt",
    "lastError",
    "nextAttemptAt",
    "finishedAt",
    "result",
    "error",
    "condition",
    "destination",
)
# Who may read the status: never shown to the caller.
_PRIVATE = frozenset({"authHeader"})


@dataclass(frozen=True, slots=True)
class InvocationRecord:
    invocation_id: str
    origin: Origin
    invocation_type: str  # Async, Batch, Event
    enqueued_at: str  # RFC 3339, as every time in the record
    updated_at: str
    state: State = State.ENQUEUED
    attempts: int = 0
    job_id: str | None = None
    started_at: str | None = None  # of the first attempt
    last_error: ErrorBody | None = None  # of the last attempt that will be retried
    next_attempt_at: str | None = None
    finished_at: str | None = None
    result: InvocationResult | None = None
    no_reply: bool = False  # the last attempt got no reply at all: result is written as null
    error: ErrorBody | None = None
    condition: str | None = None  # Lambda's destination condition, once final
    destination: DestinationState | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def new(
        cls,
        invocation_id: str,
        origin: Origin,
        invocation_type: str,
        enqueued_at: float,
        job_id: str | None = None,
    ) -> InvocationRecord:
        stamp = now_iso(enqueued_at)
        return cls(invocation_id, origin, invocation_type, stamp, stamp, job_id=job_id)

    # -- transitions --------------------------------------------------------------------------

    def running(self, attempt: int, now: float) -> InvocationRecord:
        return dataclasses.replace(
            self,
            state=State.RUNNING,
            attempts=attempt,
            started_at=self.started_at or now_iso(now),
        )

    def retrying(self, attempts: int, error: ErrorBody, next_attempt_at: float) -> InvocationRecord:
        return dataclasses.replace(
            self,
            state=State.RETRYING,
            attempts=attempts,
            last_error=error,
            next_attempt_at=now_iso(next_attempt_at),
        )

    def finished(
        self,
        state: State,
        condition: str | None,
        now: float,
        *,
        result: InvocationResult | None = None,
        no_reply: bool = False,
        error: ErrorBody | None = None,
    ) -> InvocationRecord:
        assert state.final, state
        return dataclasses.replace(
            self,
            state=state,
            condition=condition,
            finished_at=now_iso(now),
            next_attempt_at=None,
            result=result,
            no_reply=no_reply,
            error=error,
        )

    def seconds_since_update(self, now: float) -> float | None:
        """How long ago the record was last written; None when updatedAt is not a time."""
        try:
            updated = datetime.datetime.fromisoformat(self.updated_at)
        except ValueError:
            return None
        if updated.tzinfo is None:
            return None
        return now - updated.timestamp()

    def settles(self, invocation_id: str) -> bool:
        """Whether this record says ``invocation_id`` has ended: a delivery of it that
        finds this is a redelivery, to be acknowledged without running again."""
        return self.state.final and self.invocation_id == invocation_id

    def with_destination(self, destination: DestinationState) -> InvocationRecord:
        return dataclasses.replace(self, destination=destination)

    def touched(self, now: float) -> InvocationRecord:
        return dataclasses.replace(self, updated_at=now_iso(now))

    # -- the wire -----------------------------------------------------------------------------

    def encode(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "invocationId": self.invocation_id,
            "namespace": self.origin.namespace,
            "function": self.origin.function,
            "trigger": self.origin.trigger,
            "authHeader": self.origin.auth_header,
            "invocationType": self.invocation_type,
            "state": str(self.state),
            "attempts": self.attempts,
            "enqueuedAt": self.enqueued_at,
            "updatedAt": self.updated_at,
        }
        optional: dict[str, Any] = {
            "version": self.origin.version,
            "jobId": self.job_id,
            "startedAt": self.started_at,
            "lastError": self.last_error.as_dict() if self.last_error else None,
            "nextAttemptAt": self.next_attempt_at,
            "finishedAt": self.finished_at,
            "result": self.result.encode() if self.result else None,
            "error": self.error.as_dict() if self.error else None,
            "condition": self.condition,
            "destination": str(self.destination) if self.destination else None,
        }
        written = {name for name, value in optional.items() if value is not None}
        if self.no_reply:
            written.add("result")
        record.update((name, value) for name, value in optional.items() if name in written)
        record.update((name, value) for name, value in self.extra.items() if name not in record)
        return record

    def dumps(self) -> bytes:
        return json.dumps(self.encode()).encode()

    def public(self) -> dict[str, Any]:
        """What the status URL shows: the record without who may read it."""
        return {k: v for k, v in self.encode().items() if k not in _PRIVATE}

    @classmethod
    def parse(cls, raw: bytes | str | Mapping[str, Any]) -> InvocationRecord:
        """Raises RecordInvalid naming the field that is missing or of the wrong type."""
        if isinstance(raw, bytes | str):
            try:
                raw = json.loads(raw)
            except ValueError as bad:
                raise RecordInvalid(f"the record is not JSON: {bad}") from None
        fields = _object(raw, "the record")
        state = fields.get("state", State.ENQUEUED)
        try:
            state = State(state)
        except ValueError:
            raise RecordInvalid(f"state must be one of {', '.join(State)}, not {state!r}") from None
        destination = fields.get("destination")
        try:
            destination = None if destination is None else DestinationState(destination)
        except ValueError:
            raise RecordInvalid(f"destination {destination!r} is not a known one") from None
        attempts = fields.get("attempts", 0)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise RecordInvalid(f"attempts must be a whole number >= 0, not {attempts!r}")
        enqueued_at = _text(fields, "enqueuedAt")
        return cls(
            invocation_id=_text(fields, "invocationId"),
            origin=Origin(
                _text(fields, "namespace"),
                _text(fields, "function"),
                _optional_text(fields, "trigger"),
                _optional_text(fields, "authHeader"),
                _version(fields),
            ),
            invocation_type=_optional_text(fields, "invocationType") or "Async",
            enqueued_at=enqueued_at,
            updated_at=_optional_text(fields, "updatedAt") or enqueued_at,
            state=state,
            attempts=attempts,
            job_id=_optional_text(fields, "jobId"),
            started_at=_optional_text(fields, "startedAt"),
            last_error=_error(fields, "lastError"),
            next_attempt_at=_optional_text(fields, "nextAttemptAt"),
            finished_at=_optional_text(fields, "finishedAt"),
            result=None
            if fields.get("result") is None
            else InvocationResult.parse(fields["result"]),
            no_reply="result" in fields and fields["result"] is None,
            error=_error(fields, "error"),
            condition=_optional_text(fields, "condition"),
            destination=destination,
            extra={k: v for k, v in fields.items() if k not in _KNOWN},
        )


def _version(fields: Mapping[str, Any]) -> int | None:
    version = fields.get("version")
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RecordInvalid(f"version must be a version number >= 1, not {version!r}")
    return version


def _object(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise RecordInvalid(f"{where} must be a JSON object, not {type(raw).__name__}")
    return raw


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise RecordInvalid(f"{name} must be a non-empty string")
    return value


def _optional_text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, str):
        raise RecordInvalid(f"{name} must be a string, not {type(value).__name__}")
    return value


def _error(fields: Mapping[str, Any], name: str) -> ErrorBody | None:
    value = fields.get(name)
    if value is None:
        return None
    error = ErrorBody.parse(value) if isinstance(value, Mapping) else None
    if error is None:
        raise RecordInvalid(f"{name} must be an error body with an errorType")
    return error
