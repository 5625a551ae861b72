"""One Function's async invocations: pull them from its durable consumer and run each
through the gateway's internal port, recording every step in the status bucket.

Several dispatchers pull from the same durable consumer, so they share the work; what a
dispatcher that dies was running is redelivered when its heartbeats stop.

Redelivery never reruns finished work: an attempt's final record is stored before its
message is acknowledged (the write retried while NATS restarts), and every delivery reads
the record before it runs, acknowledging without a run one whose record is already final
and waiting out one whose attempt may still be live. A second run comes only from a
dispatcher or replica that died between a run and its record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from hanshu_api.error_body import ErrorBody
from hanshu_api.invocation_record import (
    DestinationState,
    InvocationRecord,
    InvocationResult,
    RecordInvalid,
    State,
)
from hanshu_api.invocations import (
    HTTP_ATTEMPT,
    HTTP_INVOCATION_ID,
    HTTP_INVOCATION_TYPE,
    HTTP_JOB_ID,
    HTTP_TARGET,
    STREAM,
    InvocationHeaders,
    consumer_name,
    header_key,
    record_key,
    subject_for,
)
from hanshu_api.jetstream import Invocations
from hanshu_api.logs import request_id_var
from hanshu_api.models import Destination
from hanshu_api.platform import FunctionKey
from hanshu_api.trace_context import TRACEPARENT, TRACESTATE, incoming
from hanshu_api.tracing import CONSUMER, NO_TRACING, Tracer, current_trace
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import MsgAlreadyAckdError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError

from . import metrics
from .config import DispatcherConfig
from .destinations import Destinations, destination_record
from .gateway_client import InternalGateway
from .outcome import (
    EVENT_AGE_EXCEEDED,
    RETRIES_EXHAUSTED,
    Next,
    Reply,
    Verdict,
    error_of,
    judge,
    next_step,
    wait_for_live_attempt,
)

log = logging.getLogger("hanshu.dispatcher")

FETCH_WAIT_SECONDS = 5.0
# A failed fetch (NATS away) is tried again after this; one failure in this many is logged.
FETCH_RETRY_SECONDS = 0.5
FETCH_FAILURES_PER_LOG = 120
# A consumer no dispatcher has pulled from for this long is removed by the server.
CONSUMER_INACTIVE_SECONDS = 3600.0
# A final record is written again and again while NATS is away (a restart, a leader
# election): acknowledging a run whose outcome is not stored would lose it, and leaving it
# unacknowledged reruns it. Past this, the message's redelivery takes over.
FINAL_WRITE_PATIENCE_SECONDS = 300.0
# An acknowledgement that cannot land (NATS restarting) is retried this long; after that the
# redelivered copy finds the final record and is acknowledged without a run.
ACK_PATIENCE_SECONDS = 10.0
ACK_TIMEOUT_SECONDS = 2.0
# Added to a deferred delivery's wait: time for the live attempt's outcome to land.
LIVE_ATTEMPT_MARGIN_SECONDS = 1.0


class OutcomeNotStored(Exception):
    """The final record of a run could not be stored: its message stays unacknowledged."""


def store_retry_delay(failures: int) -> float:
    """Pause before writing to NATS again after ``failures`` failed tries: short at first,
    since a client reconnects within a second of the server being back."""
    return float(min(0.5, 0.05 * 2 ** max(0, failures - 1)))


def consumer_config(key: FunctionKey, config: DispatcherConfig) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=consumer_name(key),
        filter_subject=subject_for(key),
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=config.ack_wait_seconds,
        # Retries are decided here (attempts, event age): the server never gives up on its own.
        max_deliver=-1,
        # Delayed retries hold a slot too: leave room for them next to the running ones.
        max_ack_pending=max(1000, config.concurrency * 10),
        inactive_threshold=CONSUMER_INACTIVE_SECONDS,
    )


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stored invocation: what its headers say, and the request's body."""

    headers: InvocationHeaders
    body: bytes

    @classmethod
    def of(cls, headers: Mapping[str, str], body: bytes) -> Delivery:
        return cls(InvocationHeaders.from_headers(headers), body)

    @property
    def invocation_id(self) -> str:
        return self.headers.invocation_id

    def new_record(self) -> InvocationRecord:
        stored = self.headers
        return InvocationRecord.new(
            stored.invocation_id,
            stored.origin,
            stored.invocation_type,
            stored.enqueued_at,
            stored.job_id,
        )


class FunctionWorker:
    def __init__(
        self,
        key: FunctionKey,
        config: DispatcherConfig,
        store: Invocations,
        gateway: InternalGateway,
        destinations: Destinations,
        tracer: Tracer = NO_TRACING,
    ) -> None:
        self.key = key
        self.tracer = tracer
        self.config = config
        self.store = store
        self.gateway = gateway
        self.destinations = destinations
        self.running: set[asyncio.Task[None]] = set()
        self.last_message = time.monotonic()
        self._slots = asyncio.Semaphore(config.concurrency)

    async def run(self) -> None:
        subscription = await self.store.js.pull_subscribe_bind(
            consumer_name(self.key), stream=STREAM
        )
        try:
            await self._pull(subscription)
        finally:
            # A worker stopped while idle leaves no pull subscription behind.
            with contextlib.suppress(NatsError, TimeoutError):
                await subscription.unsubscribe()

    async def _pull(self, subscription: Any) -> None:
        failures = 0  # fetches failed in a row
        while True:
            await self._slots.acquire()
            free = 1
            while free < self.config.concurrency and not self._slots.locked():
                await self._slots.acquire()
                free += 1
            try:
                messages = await subscription.fetch(free, timeout=FETCH_WAIT_SECONDS)
            except (NatsTimeout, TimeoutError):
                messages = []
            except NatsError as error:
                # While NATS is away every fetch fails, twice a second: the first failure
                # is said, then one a minute, and the recovery once.
                if failures % FETCH_FAILURES_PER_LOG == 0:
                    log.warning("%s/%s: fetching failed (%s); trying again", *self.key, error)
                failures += 1
                messages = []
                await asyncio.sleep(FETCH_RETRY_SECONDS)
            else:
                if failures:
                    log.info("%s/%s: fetching again after %d failures", *self.key, failures)
                failures = 0
            for _ in range(free - len(messages)):
                self._slots.release()
            for message in messages:
                self.last_message = time.monotonic()
                task = asyncio.create_task(self._run_one(message))
                self.running.add(task)
                task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "%s/%s: an invocation failed in the dispatcher",
                *self.key,
                exc_info=task.exception(),
            )

    async def _run_one(self, message: Msg) -> None:
        try:
            delivery = Delivery.of(message.headers or {}, message.data)
        except ValueError as bad:
            metrics.MALFORMED.inc()
            log.error(
                "%s/%s: removing a stored message that is not an invocation (%s)", *self.key, bad
            )
            await message.term()
            return
        # This task's log lines name the invocation and its trace (a message stored
        # without one runs in a trace of its own).
        request_id_var.set(delivery.invocation_id)
        current_trace.set(delivery.headers.trace or incoming(None, None))
        heartbeat = asyncio.create_task(self._heartbeat(message))
        try:
            await self._deliver(message, delivery)
        except (NatsError, TimeoutError) as error:
            # Nothing ran yet (its status could not be read or written): deliver it again.
            log.warning("%s: %s; it will be delivered again", delivery.invocation_id, error)
            with contextlib.suppress(NatsError, TimeoutError):
                await message.nak(delay=1.0)
        except OutcomeNotStored as why:
            # It ran: no nak (it may run again only when redelivery takes over).
            metrics.UNSTORED_OUTCOMES.labels(*self.key).inc()
            log.error("%s: %s; left unacknowledged", delivery.invocation_id, why)
        finally:
            heartbeat.cancel()

    async def _heartbeat(self, message: Msg) -> None:
        """Tell JetStream the attempt is still running: a job that runs longer than the
        ack deadline is never handed to a second dispatcher while it runs."""
        while True:
            await asyncio.sleep(self.config.ack_wait_seconds / 3)
            with contextlib.suppress(NatsError, TimeoutError):
                await message.in_progress()

    async def _load(self, delivery: Delivery) -> InvocationRecord:
        try:
            entry = await self.store.status.get(record_key(delivery.invocation_id))
        except KeyNotFoundError:
            # A batch member (the gateway stores only the job), or a status that expired.
            return delivery.new_record()
        try:
            record = InvocationRecord.parse(entry.value or b"")
        except RecordInvalid as bad:
            log.warning("%s: its stored status is unreadable (%s)", delivery.invocation_id, bad)
            return delivery.new_record()
        if record.invocation_id != delivery.invocation_id:
            log.warning("%s: its status key holds another invocation's", delivery.invocation_id)
            return delivery.new_record()
        return record

    async def _save(self, record: InvocationRecord) -> InvocationRecord:
        record = record.touched(time.time())
        await self.store.status.put(record_key(record.invocation_id), record.dumps())
        return record

    async def _save_outcome(
        self, record: InvocationRecord, attempt: int | None = None
    ) -> InvocationRecord:
        """Store a record that follows attempt ``attempt`` (the record's own count unless
        given), trying again until it lands: its message is acknowledged only once it has.
        Raises OutcomeNotStored when NATS stays away past FINAL_WRITE_PATIENCE_SECONDS or a
        later delivery of the invocation has started an attempt of its own."""
        attempt = record.attempts if attempt is None else attempt
        deadline = time.monotonic() + FINAL_WRITE_PATIENCE_SECONDS
        failures = 0
        while True:
            try:
                return await self._save(record)
            except (NatsError, TimeoutError) as error:
                failures += 1
                if failures == 1:
                    log.warning(
                        "%s: cannot store its outcome yet (%s); trying again",
                        record.invocation_id,
                        _describe(error),
                    )
                if time.monotonic() > deadline:
                    raise OutcomeNotStored(f"its outcome was not stored: {error}") from error
            await asyncio.sleep(store_retry_delay(failures))
            if await self._taken_over(record.invocation_id, attempt):
                raise OutcomeNotStored("a later delivery took the invocation over")

    async def _taken_over(self, invocation_id: str, attempt: int) -> bool:
        """Whether an attempt after ``attempt`` has started (the message was delivered
        again while this outcome could not be stored): that delivery now owns it."""
        try:
            entry = await self.store.status.get(record_key(invocation_id))
            stored = InvocationRecord.parse(entry.value or b"")
        except (NatsError, TimeoutError, RecordInvalid):
            return False
        return stored.attempts > attempt

    async def _acknowledge(self, message: Msg, invocation_id: str) -> None:
        """Acknowledge and wait for NATS to confirm it, trying again for a while; one that
        never lands is harmless, since the final record is stored before it."""
        deadline = time.monotonic() + ACK_PATIENCE_SECONDS
        failures = 0
        while True:
            try:
                await message.ack_sync(timeout=ACK_TIMEOUT_SECONDS)
                return
            except MsgAlreadyAckdError:
                return
            except (NatsError, TimeoutError) as error:
                failures += 1
                if time.monotonic() > deadline:
                    metrics.UNACKNOWLEDGED.labels(*self.key).inc()
                    log.warning(
                        "%s: not acknowledged (%s); its redelivery will be skipped",
                        invocation_id,
                        _describe(error),
                    )
                    return
            await asyncio.sleep(store_retry_delay(failures))

    async def _deliver(self, message: Msg, delivery: Delivery) -> None:
        namespace, function = self.key
        # Read on every delivery, the first too: a delivery count does not survive every
        # NATS restart, so only the record says whether this already ran.
        record = await self._load(delivery)
        if record.settles(delivery.invocation_id):
            metrics.REDELIVERIES_SKIPPED.labels(namespace, function).inc()
            if record.destination is DestinationState.PENDING:
                # Its dispatcher stopped between the outcome and its destination.
                await self._send_destination(delivery, record)
            else:
                metrics.DUPLICATES.labels(namespace, function).inc()
            await self._acknowledge(message, delivery.invocation_id)
            return
        if record.state is State.RUNNING:
            wait = wait_for_live_attempt(
                record.seconds_since_update(time.time()), self.config.ack_wait_seconds
            )
            if wait > 0:
                metrics.REDELIVERIES_DEFERRED.labels(namespace, function).inc()
                await message.nak(delay=wait + LIVE_ATTEMPT_MARGIN_SECONDS)
                return
        policy = delivery.headers.policy
        age = time.time() - delivery.headers.enqueued_at
        if age > policy.max_event_age_seconds:
            await self._finish(
                message, delivery, record, Next(State.EXPIRED, EVENT_AGE_EXCEEDED), None
            )
            return
        if record.state is State.RUNNING:
            # The last attempt's dispatcher (or its replica) died mid-run: it may have run.
            metrics.REPEATED_RUNS.labels(namespace, function).inc()
            if record.attempts >= policy.max_attempts:
                await self._finish(
                    message, delivery, record, Next(State.FAILED, RETRIES_EXHAUSTED), None
                )
                return
        attempt = record.attempts + 1
        record = await self._save(record.running(attempt, time.time()))
        reply = await self._call(delivery, attempt)
        verdict = judge(reply)
        metrics.ATTEMPTS.labels(namespace, function, verdict.value).inc()
        step = next_step(
            verdict,
            attempt,
            policy.max_attempts,
            age=time.time() - delivery.headers.enqueued_at,
            max_age=policy.max_event_age_seconds,
            retry_after=reply.retry_after,
            base=self.config.retry_base_seconds,
            cap=self.config.retry_max_seconds,
        )
        if step.state is not None:
            await self._finish(message, delivery, record, step, reply)
            return
        attempts = attempt if step.uses_attempt else attempt - 1
        await self._save_outcome(
            record.retrying(attempts, error_of(reply), time.time() + step.delay), attempt
        )
        await message.nak(delay=step.delay)

    async def _call(self, delivery: Delivery, attempt: int) -> Reply:
        stored = delivery.headers
        request = stored.request
        headers = [(k, v) for k, v in request.headers if header_key(k) not in _REPLACED]
        headers += [
            (HTTP_TARGET, request.target),
            (HTTP_INVOCATION_ID, delivery.invocation_id),
            (HTTP_ATTEMPT, str(attempt)),
            (HTTP_INVOCATION_TYPE, stored.invocation_type),
            ("X-Request-Id", delivery.invocation_id),
        ]
        if stored.job_id:
            headers.append((HTTP_JOB_ID, stored.job_id))
        # A consumer span per attempt, below the span the call was taken in; the gateway
        # and the replica are told it (traceparent), so their spans sit below it.
        span = self.tracer.start(
            f"process {self.key[1]}",
            CONSUMER,
            current_trace.get() or stored.trace or incoming(None, None),
            {
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.destination.name": subject_for(self.key),
                "messaging.message.id": delivery.invocation_id,
                "faas.invocation_id": delivery.invocation_id,
                "hanshu.attempt": attempt,
            },
        )
        headers += span.context.headers()
        try:
            try:
                reply = await self.gateway.dispatch(
                    *self.key,
                    request.method,
                    headers,
                    delivery.body,
                    time_limit=stored.policy.timeout_seconds + self.config.call_margin_seconds,
                )
            except TimeoutError:
                span.fail("DispatchTimeout")
                return Reply(0, {}, b"the gateway did not answer in time", "DispatchTimeout")
            except aiohttp.ClientError as error:
                span.fail("GatewayUnreachable")
                return Reply(0, {}, str(error).encode(), "GatewayUnreachable")
            span.set("http.response.status_code", reply.status)
            if reply.status >= 500:
                span.fail(f"HTTP {reply.status}")
            return Reply(reply.status, reply.headers, reply.body, reply.gateway_error)
        finally:
            span.end()

    async def _finish(
        self,
        message: Msg,
        delivery: Delivery,
        record: InvocationRecord,
        step: Next,
        reply: Reply | None,
    ) -> None:
        assert step.state is not None
        now = time.time()
        if reply is None:
            record = record.finished(
                step.state, step.condition, now, error=_no_reply_error(step.condition)
            )
        elif step.state is State.SUCCEEDED:
            result = InvocationResult.of(reply.status, reply.body)
            record = record.finished(step.state, step.condition, now, result=result)
        else:
            # No reply (status 0): nothing to keep but the error.
            kept = InvocationResult.of(reply.status, reply.body) if reply.status else None
            record = record.finished(
                step.state,
                step.condition,
                now,
                result=kept,
                no_reply=kept is None,
                error=error_of(reply),
            )
        if self._destination_of(delivery, record) is not None:
            # Saved before it is sent: a dispatcher that stops in between leaves the message
            # unacknowledged, and whoever gets it again sends the record.
            record = record.with_destination(DestinationState.PENDING)
        record = await self._save_outcome(record)
        metrics.OUTCOMES.labels(*self.key, delivery.headers.invocation_type, step.state).inc()
        if record.destination is DestinationState.PENDING:
            await self._send_destination(delivery, record)
        await self._acknowledge(message, delivery.invocation_id)

    def _destination_of(self, delivery: Delivery, record: InvocationRecord) -> Destination | None:
        policy = delivery.headers.policy
        return policy.on_success if record.state is State.SUCCEEDED else policy.on_failure

    async def _send_destination(self, delivery: Delivery, record: InvocationRecord) -> None:
        """Lambda's destination record, from the invocation's stored outcome."""
        destination = self._destination_of(delivery, record)
        if destination is None:
            return
        result = record.result
        sent = await self.destinations.send(
            self.key,
            destination,
            destination_record(
                key=self.key,
                invocation_id=delivery.invocation_id,
                condition=record.condition or "",
                attempts=record.attempts,
                request_body=delivery.body,
                status=result.status_code if result else None,
                response_body=result.payload() if result else None,
                error=record.error,
                now=time.time(),
            ),
        )
        await self._save_outcome(
            record.with_destination(DestinationState.SENT if sent else DestinationState.FAILED)
        )


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _no_reply_error(condition: str | None) -> ErrorBody:
    """An invocation that ended without a reply: too old, or its last attempt never ended."""
    return ErrorBody(
        condition or str(State.FAILED),
        "the event was older than the Function's maxEventAge"
        if condition == EVENT_AGE_EXCEEDED
        else "the last attempt did not finish (its replica or dispatcher stopped)",
    )


# Set by the dispatcher's own call (a fresh target, id and attempt per delivery), or by the
# HTTP client (framing).
_REPLACED = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        HTTP_TARGET.lower(),
        HTTP_INVOCATION_ID.lower(),
        HTTP_ATTEMPT.lower(),
        HTTP_INVOCATION_TYPE.lower(),
        TRACEPARENT,
        TRACESTATE,
        HTTP_JOB_ID.lower(),
        "x-request-id",
    }
)

__all__ = ["FunctionWorker", "Verdict", "consumer_config"]
