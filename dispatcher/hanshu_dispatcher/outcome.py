"""What one attempt's reply means for an async invocation (pure).

The rules are Lambda's for async events: a function error, a timeout or a replica that died
is retried, up to the Function's ``maxRetryAttempts``, with growing backoff; throttling (the
platform could not run it yet) is retried until the event's age runs out and does not use an
attempt; an answer the function gave on purpose, a 4xx, is final.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass

from hanshu_api.error_body import ErrorBody, reply_error
from hanshu_api.invocation_record import State

# The gateway's own 429 and 503 say it could not run the invocation yet (a full queue, a
# cold start past its timeout, replicas that cannot start: ImagePullFailed, Unschedulable
# ...): throttling, retried until the event's age runs out without using an attempt, so
# a fault fixed within maxEventAge loses nothing. Its 502 (a replica died mid-run) and
# 504 (the function timed out) are failed attempts.
THROTTLE_CODES = frozenset({429, 503})
# Replies a function could send that say "try again".
RETRIED_CLIENT_CODES = frozenset({408, 429})

# Lambda's destination conditions, and ours for a reply that ended it on purpose.
SUCCESS = "Success"
RETRIES_EXHAUSTED = "RetriesExhausted"
EVENT_AGE_EXCEEDED = "EventAgeExceeded"
NOT_RETRIED = "NotRetried"


class Verdict(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # final: onFailure gets it
    RETRY = "retry"  # a function error, a timeout, a replica that died
    THROTTLED = "throttled"  # not run: retry without using an attempt


@dataclass(frozen=True, slots=True)
class Reply:
    """What came back from the gateway; status 0 means no reply at all."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    gateway_error: str | None = None  # errorType when the gateway itself refused

    @property
    def retry_after(self) -> float | None:
        raw = self.headers.get("Retry-After", "")
        try:
            return max(0.0, float(raw)) if raw else None
        except ValueError:
            return None


def judge(reply: Reply) -> Verdict:
    if reply.gateway_error and reply.status in THROTTLE_CODES:
        return Verdict.THROTTLED
    if reply.status == 0 or reply.status >= 500 or reply.status in RETRIED_CLIENT_CODES:
        return Verdict.RETRY
    if reply.status >= 400:
        return Verdict.FAILED
    return Verdict.SUCCEEDED


@dataclass(frozen=True, slots=True)
class Next:
    state: State | None  # a final state, or None to retry
    condition: str | None = None  # the destination condition when final
    delay: float = 0.0  # before the next delivery when retrying
    uses_attempt: bool = True


def next_step(
    verdict: Verdict,
    attempt: int,
    max_attempts: int,
    *,
    age: float,
    max_age: float,
    retry_after: float | None,
    base: float,
    cap: float,
    rng: random.Random | None = None,
) -> Next:
    """The state after attempt number ``attempt`` (1-based) had ``verdict``."""
    if verdict is Verdict.SUCCEEDED:
        return Next(State.SUCCEEDED, SUCCESS)
    if verdict is Verdict.FAILED:
        return Next(State.FAILED, NOT_RETRIED)
    if verdict is Verdict.RETRY and attempt >= max_attempts:
        return Next(State.FAILED, RETRIES_EXHAUSTED)
    delay = backoff(attempt, base, cap, rng)
    if retry_after is not None:
        delay = max(delay if verdict is Verdict.RETRY else 0.0, min(retry_after, cap))
    if age + delay > max_age:
        return Next(State.EXPIRED, EVENT_AGE_EXCEEDED)
    return Next(None, delay=delay, uses_attempt=verdict is Verdict.RETRY)


def wait_for_live_attempt(since_update: float | None, ack_wait: float) -> float:
    """How long a delivery that finds its record Running waits before it runs again.

    A dispatcher that dies mid-run leaves its message to be delivered again only an ack
    deadline after its last heartbeat, so its Running record is at least that old: run
    now. A younger one means the attempt may be live elsewhere (a NATS restart hands out
    again what was delivered but not yet acknowledged): wait out the deadline, by when that
    attempt has stored its outcome (and the delivery is skipped) or stopped heartbeating.
    """
    if since_update is None:
        return 0.0
    return max(0.0, ack_wait - since_update)


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """base, 2 x base, 4 x base ... up to cap, with +-20% jitter so that the retries of a
    burst that failed together do not all come back at the same moment."""
    spread = (rng or random).uniform(0.8, 1.2)
    return float(min(cap, base * 2 ** max(0, attempt - 1)) * spread)


def error_of(reply: Reply) -> ErrorBody:
    """The runtime's or the gateway's error body, else the status line; with no reply,
    the gateway's refusal (``gateway_error``) or ``NoReply``."""
    return reply_error(reply.status, reply.body, not_delivered=reply.gateway_error or "NoReply")
