"""The ``context`` argument: Lambda's attributes and Function Compute's, so ported code runs.

What the instance shares (name, version, memory, ARN, log names) is built once at start-up
in ``FunctionInfo``; a ``Context`` per invocation adds only what differs per call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

# Set by the dispatcher (async invocations and batch jobs) on its call through the gateway;
# a direct HTTP call carries none of them.
INVOCATION_ID_HEADER = "X-Hanshu-Invocation-Id"
ATTEMPT_HEADER = "X-Hanshu-Attempt"
INVOCATION_TYPE_HEADER = "X-Hanshu-Invocation-Type"
SYNC = "Sync"
INVOCATION_TYPES = {name.lower(): name for name in (SYNC, "Async", "Batch", "Event")}
_MAX_INVOCATION_ID = 256
_MAX_ATTEMPT_DIGITS = 9


@dataclass(frozen=True, slots=True)
class CognitoIdentity:
    """Lambda's ``context.identity``: always an object, empty outside mobile SDK calls."""

    cognito_identity_id: str | None = None
    cognito_identity_pool_id: str | None = None


NO_IDENTITY = CognitoIdentity()


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """The function as every invocation of this instance sees it.

    The field names are Function Compute's ``context.function`` (name, handler, memory,
    timeout); the rest feed Lambda's context attributes.
    """

    name: str
    handler: str
    version: str
    memory: int
    timeout: float
    namespace: str
    instance: str

    @property
    def arn(self) -> str:
        # Lambda's positions (arn:partition:service:region:account:function:name), so code
        # that splits an ARN finds the name at [6]; Hanshu has no regions and its
        # namespace stands where the account does.
        return f"arn:hanshu:function::{self.namespace}:function:{self.name}"

    @property
    def log_group(self) -> str:
        return f"/hanshu/{self.namespace}/{self.name}"


@dataclass(slots=True)
class Context:
    """One invocation's ``context``. Lambda's: ``aws_request_id``, ``function_name``,
    ``function_version``, ``invoked_function_arn``, ``memory_limit_in_mb``,
    ``log_group_name``, ``log_stream_name``, ``identity``, ``client_context``,
    ``tenant_id``, ``get_remaining_time_in_millis()``. Function Compute's: ``request_id``,
    ``function``. Hanshu's: ``logger``, ``invocation_id``, ``attempt``,
    ``invocation_type``, ``traceparent`` and ``trace_id`` (W3C Trace Context: send
    ``traceparent`` on the calls the handler makes and they join the invocation's trace)."""

    request_id: str
    function: FunctionInfo
    deadline_monotonic: float
    logger: logging.Logger = field(repr=False)
    invocation_id: str
    attempt: int = 1
    invocation_type: str = SYNC
    traceparent: str = ""
    # The same for every call (class attributes: one is built per request, keep it cheap).
    # Lambda sets these only for mobile SDK and tenant-isolated calls; Hanshu has neither.
    identity: ClassVar[CognitoIdentity] = NO_IDENTITY
    client_context: ClassVar[None] = None
    tenant_id: ClassVar[None] = None

    @property
    def trace_id(self) -> str:
        """The W3C trace id (32 hex digits), or "" outside an invocation (the initializer)."""
        return self.traceparent[3:35]

    @property
    def aws_request_id(self) -> str:
        return self.request_id

    @property
    def function_name(self) -> str:
        return self.function.name

    @property
    def function_version(self) -> str:
        return self.function.version

    @property
    def memory_limit_in_mb(self) -> int:
        return self.function.memory

    @property
    def invoked_function_arn(self) -> str:
        return self.function.arn

    @property
    def log_group_name(self) -> str:
        return self.function.log_group

    @property
    def log_stream_name(self) -> str:
        # Lambda's stream is per execution environment; here that is the pod, whose name
        # is what `kubectl logs` takes.
        return self.function.instance

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline_monotonic - time.monotonic()) * 1000))


def invocation_of(headers: Mapping[str, str], request_id: str) -> tuple[str, int, str]:
    """(invocation id, attempt, invocation type) from the dispatcher's headers.

    ``headers`` must look names up case-insensitively (the server's do). A value that cannot
    be used falls back to what a first synchronous call has, never to an error: these
    describe the call, they do not decide whether it runs.
    """
    invocation_id = headers.get(INVOCATION_ID_HEADER, "").strip()
    usable = 0 < len(invocation_id) <= _MAX_INVOCATION_ID and invocation_id.isprintable()
    if not usable:
        invocation_id = request_id
    raw_attempt = headers.get(ATTEMPT_HEADER, "").strip()
    attempt = 1
    if raw_attempt.isascii() and raw_attempt.isdigit() and len(raw_attempt) <= _MAX_ATTEMPT_DIGITS:
        attempt = max(1, int(raw_attempt))
    raw_type = headers.get(INVOCATION_TYPE_HEADER, "").strip().lower()
    return invocation_id, attempt, INVOCATION_TYPES.get(raw_type, SYNC)
