"""Async invocations as the gateway stores them and the dispatcher runs them.

An async call is stored as one JetStream message on the subject of its Function: the HTTP
request to replay (method, raw target, headers, body) and the Function's async policy at
the time of the call (retries, event age, destinations), so the dispatcher needs no view of
the cluster. The message's NATS headers are one type, InvocationHeaders, that the gateway
encodes (``to_headers``) and the dispatcher parses (``from_headers``). Its progress is a JSON
record (invocation_record.InvocationRecord) in a JetStream key-value bucket, keyed by the
invocation id, which the gateway serves at the status URL.

Pure names and shapes only: the NATS I/O lives in the gateway and the dispatcher.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The status record's names, where the gateway has always imported them from.
from .invocation_record import FINAL_STATES as FINAL_STATES
from .invocation_record import MAX_RESULT_BODY_BYTES as MAX_RESULT_BODY_BYTES
from .invocation_record import Origin as Origin
from .invocation_record import State as State
from .invocation_record import now_iso as now_iso
from .models import AsyncPolicy, Destination
from .platform import FunctionKey
from .trace_context import TRACEPARENT, TRACESTATE, TraceContext, stored

STREAM = "HANSHU_INVOCATIONS"
SUBJECT_PREFIX = "hanshu.invoke"
# A nudge (core NATS, not stored) so a dispatcher starts consuming a Function at once
# rather than at its next look at the stream.
WAKE_SUBJECT = "hanshu.dispatch.wake"
STATUS_BUCKET = "hanshu_invocations"
IDEMPOTENCY_BUCKET = "hanshu_idempotency"

# Message headers (NATS headers travel with the stored message).
H_MSG_ID = "Nats-Msg-Id"  # JetStream drops a second message with the same id in its window
H_INVOCATION = "Hanshu-Invocation-Id"
H_TYPE = "Hanshu-Invocation-Type"
H_ENQUEUED = "Hanshu-Enqueued-At"
H_POLICY = "Hanshu-Policy"
H_REQUEST = "Hanshu-Request"
H_JOB = "Hanshu-Job"
H_ORIGIN = "Hanshu-Origin"  # who may read the status: namespace, function, trigger, key header
# W3C Trace Context, by the names the HTTP headers have (OpenTelemetry's NATS propagation
# uses the same): the trace the call was taken in, for the dispatcher's spans and call.
H_TRACEPARENT = TRACEPARENT
H_TRACESTATE = TRACESTATE

# The HTTP headers of the invocation itself, as the runtime reads them.
HTTP_INVOCATION_TYPE = "X-Hanshu-Invocation-Type"
HTTP_FC_INVOCATION_TYPE = "X-Fc-Invocation-Type"  # Function Compute's name for it
HTTP_INVOCATION_ID = "X-Hanshu-Invocation-Id"
HTTP_ATTEMPT = "X-Hanshu-Attempt"
HTTP_JOB_ID = "X-Hanshu-Job-Id"
# On the dispatcher's call to the gateway's internal port: the target the Function sees.
HTTP_TARGET = "X-Hanshu-Target"
# On errors the gateway itself made (not the Function's replies): the errorType.
HTTP_GATEWAY_ERROR = "X-Hanshu-Gateway-Error"

SYNC, ASYNC, BATCH, EVENT = "Sync", "Async", "Batch", "Event"
INVOCATION_TYPES = {t.lower(): t for t in (SYNC, ASYNC, BATCH)}

# The record's states (invocation_record.State), by their old names.
ENQUEUED, RUNNING, RETRYING = State.ENQUEUED, State.RUNNING, State.RETRYING
SUCCEEDED, FAILED, EXPIRED = State.SUCCEEDED, State.FAILED, State.EXPIRED

MAX_BATCH_EVENTS = 10_000

_ID = re.compile(r"^[0-9a-f]{32}(?:-[0-9]{1,5})?$")
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def new_id() -> str:
    """128 random bits: an id is the capability to read a status, so it is unguessable."""
    return secrets.token_hex(16)


def is_invocation_id(text: str) -> bool:
    return bool(_ID.match(text))


def is_job_id(text: str) -> bool:
    return bool(_JOB_ID.match(text))


def member_id(job_id: str, index: int) -> str:
    return f"{job_id}-{index}"


def record_key(invocation_id: str) -> str:
    """A job's members share a key prefix, so the job's status is one prefix watch."""
    return "inv." + invocation_id.replace("-", ".")


def job_members_filter(job_id: str) -> str:
    return f"inv.{job_id}.*"


def job_key(job_id: str) -> str:
    return f"job.{job_id}"


def _token(name: str) -> str:
    # Kubernetes names are [a-z0-9.-]; '.' separates NATS subject tokens and '_' can
    # never appear in a name, so it stands for '.' without ambiguity.
    return name.replace(".", "_")


def _untoken(token: str) -> str:
    return token.replace("_", ".")


def subject_for(key: FunctionKey) -> str:
    return f"{SUBJECT_PREFIX}.{_token(key[0])}.{_token(key[1])}"


def function_of_subject(subject: str) -> FunctionKey | None:
    parts = subject.split(".")
    if len(parts) != 4 or ".".join(parts[:2]) != SUBJECT_PREFIX:
        return None
    return _untoken(parts[2]), _untoken(parts[3])


def consumer_name(key: FunctionKey) -> str:
    """A durable consumer per Function: its backlog is its own, and one Function's burst
    never stands in front of another's events."""
    return f"fn-{_token(key[0])}-{_token(key[1])}"[:200]


# Whose an Idempotency-Key is. A key names one caller's operation, as a payment API scopes
# keys to the account: a key seen on one route, or with another credential, is another
# caller's and must never make this caller's event a "duplicate" that never runs.
IdempotencyScope = tuple[str, ...]


def route_scope(namespace: str, trigger: str, credential: str | None) -> IdempotencyScope:
    """A call on a Trigger's route, by the API key with this fingerprint (None: a route
    without a key, where every caller shares the route's scope)."""
    return ("trigger", namespace, trigger, credential or "")


def function_scope(key: FunctionKey) -> IdempotencyScope:
    """An event the platform stores for a Function (a destination, an event source)."""
    return ("function", key[0], key[1])


def idempotency_key(scope: IdempotencyScope, given: str) -> str:
    """The claim of ``given`` in ``scope``: a digest, so the bucket holds neither names nor
    keys, and JSON-encoded first, so any text hashes (a lone surrogate has no UTF-8) and no
    two scopes run together."""
    digest = hashlib.sha256(json.dumps([*scope, given]).encode()).hexdigest()
    return f"idem.{digest[:48]}"


def header_key(name: str) -> str:
    """The name a header filter compares: lowercased, '_' read as '-'. WSGI (CGI) maps both
    to one environ key (``HTTP_X_HANSHU_INVOCATION_ID``), so ``X_Hanshu_Invocation_Id`` is
    the reserved ``X-Hanshu-Invocation-Id`` to a Flask or Django app: every filter of
    reserved names drops both spellings."""
    return name.lower().replace("_", "-")


def invocation_type_of(headers: Mapping[str, str]) -> str | None:
    """'Sync', 'Async' or 'Batch' from either header name; None for a value that is none
    of them."""
    raw = headers.get(HTTP_INVOCATION_TYPE) or headers.get(HTTP_FC_INVOCATION_TYPE) or SYNC
    return INVOCATION_TYPES.get(raw.strip().lower())


# -- what travels in the message --------------------------------------------------------------


class HeadersInvalid(ValueError):
    """A stored message that is not an invocation: the message names the header."""


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """The Function's async policy at the time of the call."""

    max_attempts: int
    max_event_age_seconds: float
    timeout_seconds: float
    on_success: Destination | None
    on_failure: Destination | None

    @classmethod
    def of(cls, policy: AsyncPolicy, timeout_seconds: float) -> StoredPolicy:
        return cls(
            1 + policy.max_retry_attempts,
            policy.max_event_age_seconds,
            timeout_seconds,
            policy.on_success,
            policy.on_failure,
        )

    def document(self) -> dict[str, Any]:
        return {
            "maxAttempts": self.max_attempts,
            "maxEventAgeSeconds": self.max_event_age_seconds,
            "timeoutSeconds": self.timeout_seconds,
            "onSuccess": self.on_success.as_dict() if self.on_success else None,
            "onFailure": self.on_failure.as_dict() if self.on_failure else None,
        }

    def dumps(self) -> str:
        return json.dumps(self.document())

    @classmethod
    def parse(cls, text: str) -> StoredPolicy:
        raw = json.loads(text)

        def destination(value: Any) -> Destination | None:
            return Destination(**value) if value else None

        return cls(
            max_attempts=max(1, int(raw["maxAttempts"])),
            max_event_age_seconds=float(raw["maxEventAgeSeconds"]),
            timeout_seconds=float(raw["timeoutSeconds"]),
            on_success=destination(raw.get("onSuccess")),
            on_failure=destination(raw.get("onFailure")),
        )


@dataclass(frozen=True, slots=True)
class StoredRequest:
    """The HTTP request to replay: what the Function would have seen synchronously."""

    method: str
    target: str  # the raw target the replica gets (prefix already stripped)
    headers: Sequence[tuple[str, str]] = ()

    def dumps(self) -> str:
        return json.dumps(
            {"method": self.method, "target": self.target, "headers": list(self.headers)},
            separators=(",", ":"),
        )

    @classmethod
    def parse(cls, text: str) -> StoredRequest:
        raw = json.loads(text)
        return cls(
            str(raw["method"]),
            str(raw["target"]),
            tuple((str(k), str(v)) for k, v in raw.get("headers") or ()),
        )


@dataclass(frozen=True, slots=True)
class InvocationHeaders:
    """What travels in a stored invocation's NATS headers (the body is the request's
    body): written by the gateway, read by the dispatcher."""

    invocation_id: str
    invocation_type: str
    enqueued_at: float  # Unix time
    policy: StoredPolicy
    request: StoredRequest
    origin: Origin
    job_id: str | None = None
    # None: a message stored without one (before tracing, or by hand); it runs in a trace
    # of its own. A malformed one reads as None too: a trace never stops a call.
    trace: TraceContext | None = None

    def to_headers(self) -> dict[str, str]:
        return message_headers(
            self.invocation_id,
            self.invocation_type,
            self.enqueued_at,
            self.policy.dumps(),
            self.request,
            self.origin,
            self.job_id,
            self.trace,
        )

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> InvocationHeaders:
        """Raises HeadersInvalid naming the header that is missing or malformed."""
        for required in (H_INVOCATION, H_ENQUEUED, H_POLICY, H_REQUEST, H_ORIGIN):
            if not headers.get(required):
                raise HeadersInvalid(f"the message has no {required} header")
        try:
            origin = json.loads(headers[H_ORIGIN])
            parsed_origin = Origin(
                str(origin["namespace"]),
                str(origin["function"]),
                origin.get("trigger"),
                origin.get("authHeader"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as bad:
            raise HeadersInvalid(f"{H_ORIGIN} is malformed ({bad!r})") from None
        try:
            enqueued_at = float(headers[H_ENQUEUED])
        except ValueError:
            raise HeadersInvalid(f"{H_ENQUEUED} is not a time: {headers[H_ENQUEUED]!r}") from None
        try:
            policy = StoredPolicy.parse(headers[H_POLICY])
        except (ValueError, KeyError, TypeError) as bad:
            raise HeadersInvalid(f"{H_POLICY} is malformed ({bad!r})") from None
        try:
            request = StoredRequest.parse(headers[H_REQUEST])
        except (ValueError, KeyError, TypeError) as bad:
            raise HeadersInvalid(f"{H_REQUEST} is malformed ({bad!r})") from None
        return cls(
            invocation_id=headers[H_INVOCATION],
            invocation_type=headers.get(H_TYPE) or ASYNC,
            enqueued_at=enqueued_at,
            policy=policy,
            request=request,
            origin=parsed_origin,
            job_id=headers.get(H_JOB) or None,
            trace=stored(headers.get(H_TRACEPARENT), headers.get(H_TRACESTATE)),
        )


def message_headers(
    invocation_id: str,
    invocation_type: str,
    enqueued_at: float,
    policy: str,
    request: StoredRequest,
    origin: Origin,
    job_id: str | None = None,
    trace: TraceContext | None = None,
) -> dict[str, str]:
    """InvocationHeaders.to_headers with the policy already dumped (a batch shares one)."""
    headers = {
        H_MSG_ID: invocation_id,
        H_INVOCATION: invocation_id,
        H_TYPE: invocation_type,
        H_ENQUEUED: repr(enqueued_at),
        H_POLICY: policy,
        H_REQUEST: request.dumps(),
        H_ORIGIN: json.dumps(
            {
                "namespace": origin.namespace,
                "function": origin.function,
                "trigger": origin.trigger,
                "authHeader": origin.auth_header,
            }
        ),
    }
    if job_id:
        headers[H_JOB] = job_id
    if trace is not None:
        headers.update(trace.headers())
    return headers


# -- the status record (invocation_record.InvocationRecord), for its dict readers -------------


def public_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the status URL shows: the record without who may read it."""
    return {k: v for k, v in record.items() if k not in ("authHeader",)}


@dataclass
class JobCounts:
    total: int
    states: dict[str, int] = field(default_factory=dict)
    failed: list[dict[str, Any]] = field(default_factory=list)

    def add(self, record: Mapping[str, Any]) -> None:
        state = str(record.get("state", ENQUEUED))
        self.states[state] = self.states.get(state, 0) + 1
        if state in (FAILED, EXPIRED) and len(self.failed) < 1000:
            self.failed.append(
                {
                    "invocationId": record.get("invocationId"),
                    "state": state,
                    "attempts": record.get("attempts"),
                    "error": record.get("error"),
                }
            )

    def document(self, job: Mapping[str, Any]) -> dict[str, Any]:
        counted = sum(self.states.values())
        running = self.states.get(RUNNING, 0)
        enqueued = (
            self.states.get(ENQUEUED, 0)
            + self.states.get(RETRYING, 0)
            + max(0, self.total - counted)  # stored, not yet written to the bucket
        )
        finished = sum(self.states.get(s, 0) for s in FINAL_STATES)
        return {
            "jobId": job.get("jobId"),
            "namespace": job.get("namespace"),
            "function": job.get("function"),
            "createdAt": job.get("createdAt"),
            "state": "Finished" if finished >= self.total else "Running",
            "total": self.total,
            "enqueued": enqueued,
            "running": running,
            "succeeded": self.states.get(SUCCEEDED, 0),
            "failed": self.states.get(FAILED, 0) + self.states.get(EXPIRED, 0),
            "failedInvocations": self.failed,
        }
