"""Async and batch calls at the gateway: store the request in JetStream, answer 202, and
serve the status the dispatcher keeps.

Nothing is acknowledged that was not stored: the 202 goes out only after JetStream
acknowledged the message; when NATS is unreachable the caller gets 503 and Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hanshu_api import bounded_json
from hanshu_api.bounded_json import JsonRefused
from hanshu_api.function_contract import MAX_BODY_BYTES
from hanshu_api.invocation_record import InvocationRecord
from hanshu_api.invocations import (
    BATCH,
    ENQUEUED,
    MAX_BATCH_EVENTS,
    WAKE_SUBJECT,
    IdempotencyScope,
    InvocationHeaders,
    JobCounts,
    Origin,
    StoredPolicy,
    StoredRequest,
    idempotency_key,
    is_invocation_id,
    is_job_id,
    job_key,
    job_members_filter,
    member_id,
    message_headers,
    new_id,
    now_iso,
    record_key,
    subject_for,
)
from hanshu_api.jetstream import Invocations, StreamSettings, connect, ensure
from hanshu_api.models import AsyncPolicy
from hanshu_api.platform import FunctionKey
from hanshu_api.trace_context import TraceContext
from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

log = logging.getLogger("hanshu.gateway")

PUBLISH_TIMEOUT_SECONDS = 5.0
BATCH_PUBLISH_WINDOW = 256  # acknowledgements awaited at once while storing a batch
# What a Batch body is parsed within when the gateway does not say (it passes its own body
# limit, HANSHU_MAX_BODY_BYTES): the default body limit, Lambda's synchronous payload limit.
MAX_BATCH_BYTES = MAX_BODY_BYTES


class AsyncUnavailable(Exception):
    """JetStream did not take the event: the caller should try again later."""


class BadBatch(JsonRefused):
    """The body of a Batch call is not a list of events."""


@dataclass(frozen=True, slots=True)
class Accepted:
    invocation_id: str
    duplicate: bool  # an Idempotency-Key seen before: the first call's id


@dataclass(frozen=True, slots=True)
class Call:
    """One async call as the gateway took it."""

    key: FunctionKey
    origin: Origin
    policy: AsyncPolicy
    timeout_seconds: float
    request: StoredRequest
    body: bytes
    # Whose Idempotency-Key this call presents (hanshu_api.invocations.route_scope).
    idempotency_scope: IdempotencyScope
    # The trace it was taken in: its runs' spans and calls join it.
    trace: TraceContext | None = None


def batch_events(body: bytes, max_bytes: int = MAX_BATCH_BYTES) -> list[bytes]:
    """A JSON array of events, or one JSON event per line (NDJSON); each event becomes the
    body of one invocation, parsed within the size bound and bounded_json's depth bound.
    Raises BadBatch naming what is wrong."""
    if len(body) > max_bytes:
        raise BadBatch(
            f"the body is {len(body)} bytes, over the limit of {max_bytes} for a batch",
            limit=("bytes", max_bytes),
        )
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError as bad:
        raise BadBatch(f"the body is not UTF-8 (byte {bad.start})") from None
    if not text:
        raise BadBatch("a Batch call needs a JSON array or NDJSON body of events")
    if text.startswith("["):
        events = _parsed(text, "the body", max_bytes)
        if len(events) > MAX_BATCH_EVENTS:  # before encoding millions of them
            raise BadBatch(f"a batch holds at most {MAX_BATCH_EVENTS} events, got {len(events)}")
        encoded = [json.dumps(event, separators=(",", ":")).encode() for event in events]
    else:
        encoded = []
        # Lines end at "\n" only: str.splitlines would also split at U+2028 and other
        # separators that JSON strings may hold as they are.
        for number, line in enumerate(text.split("\n"), 1):
            line = line.strip()
            if not line:
                continue
            if len(encoded) == MAX_BATCH_EVENTS:
                raise BadBatch(f"a batch holds at most {MAX_BATCH_EVENTS} events, got more")
            _parsed(line, f"line {number}", max_bytes)
            encoded.append(line.encode())
    if not encoded:
        raise BadBatch("the batch holds no events")
    if len(encoded) > MAX_BATCH_EVENTS:
        raise BadBatch(f"a batch holds at most {MAX_BATCH_EVENTS} events, got {len(encoded)}")
    return encoded


def _parsed(text: str, what: str, max_bytes: int) -> Any:
    try:
        return bounded_json.loads(text, what=what, max_bytes=max_bytes)
    except JsonRefused as refused:
        raise BadBatch(str(refused), field=refused.field, limit=refused.limit) from None


class AsyncIntake:
    def __init__(self, url: str, settings: StreamSettings | None = None) -> None:
        self.url = url
        self.settings = settings or StreamSettings()
        self._invocations: Invocations | None = None
        self._connected = False
        self._task: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        return self._invocations is not None and self._connected

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect())

    async def _connect(self) -> None:
        client = await connect(self.url, "hanshu-gateway", self._on_change)
        while True:
            try:
                self._invocations = await ensure(client, self.settings)
                log.info("async invocations stored in JetStream at %s", self.url)
                return
            except (NatsError, TimeoutError) as error:
                log.warning("cannot set up the JetStream stream (%s); trying again", error)
                await asyncio.sleep(1.0)

    def _on_change(self, connected: bool) -> None:
        self._connected = connected

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._invocations is not None:
            await self._invocations.client.close()

    def _ready(self) -> Invocations:
        if self._invocations is None or not self._connected:
            raise AsyncUnavailable("the event store (NATS JetStream) is not reachable")
        return self._invocations

    @property
    def max_payload(self) -> int:
        invocations = self._invocations
        return invocations.client.max_payload if invocations else 1024 * 1024

    async def enqueue(
        self, call: Call, idempotency: str | None, invocation_type: str = "Async"
    ) -> Accepted:
        store = self._ready()
        invocation_id, duplicate = new_id(), False
        try:
            if idempotency:
                claimed = await self._claim(
                    store, idempotency_key(call.idempotency_scope, idempotency), invocation_id
                )
                if claimed != invocation_id:
                    invocation_id, duplicate = claimed, True
                    if await self._taken(store, invocation_id):
                        return Accepted(invocation_id, duplicate=True)
                    # Claimed but maybe never stored (NATS went away in between): store it
                    # again under the same id; JetStream keeps one message per id.
            now = time.time()
            record = InvocationRecord.new(invocation_id, call.origin, invocation_type, now)
            with contextlib.suppress(KeyWrongLastSequenceError):  # the first call's record
                await store.status.create(record_key(invocation_id), record.dumps())
            await store.js.publish(
                subject_for(call.key),
                call.body,
                timeout=PUBLISH_TIMEOUT_SECONDS,
                headers=InvocationHeaders(
                    invocation_id,
                    invocation_type,
                    now,
                    StoredPolicy.of(call.policy, call.timeout_seconds),
                    call.request,
                    call.origin,
                    trace=call.trace,
                ).to_headers(),
            )
        except (NatsError, TimeoutError) as error:
            if not duplicate:
                # No status for what may not be stored; an Idempotency-Key keeps its claim,
                # so a retry with it stores the event under the same id.
                await self._forget(store, invocation_id)
            raise AsyncUnavailable(str(error)) from None
        await self._wake(store)
        return Accepted(invocation_id, duplicate=duplicate)

    async def _claim(self, store: Invocations, claim: str, invocation_id: str) -> str:
        """The id an Idempotency-Key stands for: ours if the key is new."""
        for _ in range(3):
            try:
                await store.idempotency.create(claim, invocation_id.encode())
                return invocation_id
            except KeyWrongLastSequenceError:
                try:
                    entry = await store.idempotency.get(claim)
                except KeyNotFoundError:
                    continue  # expired or deleted in between: claim it again
                return (entry.value or b"").decode()
        raise AsyncUnavailable("the idempotency key could not be claimed")

    async def _taken(self, store: Invocations, invocation_id: str) -> bool:
        """Whether the invocation is past being stored: running, or ended."""
        try:
            entry = await store.status.get(record_key(invocation_id))
        except KeyNotFoundError:
            return False
        return bool(json.loads(entry.value or b"{}").get("state") != ENQUEUED)

    async def enqueue_batch(self, call: Call, events: Sequence[bytes]) -> tuple[str, int]:
        """One job of len(events) invocations; returns the job id and the count stored."""
        store = self._ready()
        job_id = new_id()
        now = time.time()
        job = {
            "jobId": job_id,
            "namespace": call.key[0],
            "function": call.key[1],
            "trigger": call.origin.trigger,
            "authHeader": call.origin.auth_header,
            "total": len(events),
            "createdAt": now_iso(now),
        }
        # Dumped once for the whole job: message_headers takes it as text.
        policy = StoredPolicy.of(call.policy, call.timeout_seconds).dumps()
        subject = subject_for(call.key)
        # Each member is one JSON event, whatever the whole body was sent as (NDJSON).
        member_request = StoredRequest(
            call.request.method,
            call.request.target,
            (
                *((k, v) for k, v in call.request.headers if k.lower() != "content-type"),
                ("Content-Type", "application/json"),
            ),
        )
        try:
            await store.status.create(job_key(job_id), json.dumps(job).encode())
            pending: list[asyncio.Future[Any]] = []
            for index, event in enumerate(events):
                headers = message_headers(
                    member_id(job_id, index),
                    BATCH,
                    now,
                    policy,
                    member_request,
                    call.origin,
                    job_id,
                    call.trace,
                )
                pending.append(await store.js.publish_async(subject, event, headers=headers))
                if len(pending) >= BATCH_PUBLISH_WINDOW:
                    await asyncio.wait_for(asyncio.gather(*pending), PUBLISH_TIMEOUT_SECONDS)
                    pending.clear()
            await asyncio.wait_for(asyncio.gather(*pending), PUBLISH_TIMEOUT_SECONDS)
        except (NatsError, TimeoutError) as error:
            # Some events may be stored: the job says how many of how many; the caller
            # can resubmit the whole job (ids differ) or read what ran.
            log.error("batch job %s for %s/%s not fully stored: %s", job_id, *call.key, error)
            raise AsyncUnavailable(str(error)) from None
        await self._wake(store)
        return job_id, len(events)

    async def _forget(self, store: Invocations, invocation_id: str) -> None:
        """Drop the status of an event that may not be stored, so nobody waits on it."""
        try:
            await store.status.delete(record_key(invocation_id))
        except (NatsError, TimeoutError) as error:
            log.warning("cannot clear invocation %s after a failed store: %s", invocation_id, error)

    async def _wake(self, store: Invocations) -> None:
        # Only a nudge: the dispatcher also looks at the stream on its own every moment.
        with contextlib.suppress(NatsError):
            await store.client.publish(WAKE_SUBJECT, b"")

    async def record(self, invocation_id: str) -> dict[str, Any] | None:
        """The status record, or None when there is none (unknown, or expired)."""
        if not is_invocation_id(invocation_id):
            return None
        store = self._ready()
        try:
            entry = await store.status.get(record_key(invocation_id))
        except KeyNotFoundError:
            if "-" not in invocation_id:
                return None
            # A member of a job the dispatcher has not reached yet: still enqueued.
            job = await self.job(invocation_id.split("-", 1)[0])
            if job is None or int(invocation_id.split("-", 1)[1]) >= int(job["total"]):
                return None
            return {
                "invocationId": invocation_id,
                "namespace": job["namespace"],
                "function": job["function"],
                "trigger": job.get("trigger"),
                "authHeader": job.get("authHeader"),
                "invocationType": BATCH,
                "jobId": job["jobId"],
                "state": ENQUEUED,
                "attempts": 0,
                "enqueuedAt": job["createdAt"],
            }
        except (NatsError, TimeoutError) as error:
            raise AsyncUnavailable(str(error)) from None
        return json.loads(entry.value or b"{}")  # type: ignore[no-any-return]

    async def job(self, job_id: str) -> dict[str, Any] | None:
        if not is_job_id(job_id):
            return None
        store = self._ready()
        try:
            entry = await store.status.get(job_key(job_id))
        except KeyNotFoundError:
            return None
        except (NatsError, TimeoutError) as error:
            raise AsyncUnavailable(str(error)) from None
        return json.loads(entry.value or b"{}")  # type: ignore[no-any-return]

    async def job_status(self, job: dict[str, Any]) -> dict[str, Any]:
        """Counts by state over the job's members: one watch of their latest records."""
        store = self._ready()
        counts = JobCounts(int(job["total"]))
        try:
            watcher = await store.status.watch(
                job_members_filter(str(job["jobId"])), ignore_deletes=True
            )
            try:
                async for entry in watcher:
                    if entry is None:  # the end of the values stored so far
                        break
                    counts.add(json.loads(entry.value or b"{}"))
            finally:
                await watcher.stop()  # type: ignore[no-untyped-call]
        except (NatsError, TimeoutError) as error:
            raise AsyncUnavailable(str(error)) from None
        return counts.document(job)
