"""One stream Trigger's consumer: batches from its source, invoked through the gateway,
acknowledged by outcome, after Lambda's event source mappings.

- A batch is invoked through the gateway's internal port (the same cold queue, limits and
  metering as any call; the Function wakes from zero).
- Records are acknowledged once their invocation succeeded; a failing batch (or, with
  ``reportBatchItemFailures``, its failed records) is retried with growing backoff up to
  ``maxRetryAttempts``, then sent to ``onFailure`` and acknowledged. Records older than
  ``maxRecordAge`` go to ``onFailure`` without a call; a record delivered more often than
  the attempts allow (its consumer died with it, again and again) is a poison record and
  goes there too.
- ``ordered``: one batch at a time, so a failing record holds back the ones after it until
  it succeeds or is sent on. Unordered: up to ``parallel`` batches at once.
- The source's lag is reported every second (the autoscaler scales on it), and its health
  whenever it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hanshu_api.error_body import ErrorBody
from hanshu_api.invocations import HTTP_GATEWAY_ERROR
from hanshu_api.models import StreamSource

from .stream_records import (
    MAX_RECORDS_IN_FAILURE,
    Record,
    batch_event,
    failure_record,
    judge_reply,
    too_old,
)
from .stream_sources import Source, SourceUnavailable, wait_or_stop

log = logging.getLogger("hanshu.streams")


# (event) -> (status, headers, body); status 0: no reply at all.
Invoke = Callable[[dict[str, Any]], Awaitable[tuple[int, Mapping[str, str], bytes]]]
# A failure record to onFailure -> whether it was delivered.
SendFailure = Callable[[dict[str, Any]], Awaitable[bool]]


@dataclass
class SourceHealth:
    healthy: bool | None = None
    message: str = ""
    lag: int | None = None
    last_delivery: float | None = None  # epoch seconds
    delivered: int = 0  # records acknowledged after a successful call
    failed: int = 0  # records sent to onFailure (or dropped without one)


OnChange = Callable[[SourceHealth], Awaitable[None]]


class StreamConsumer:
    def __init__(
        self,
        trigger: tuple[str, str],
        function_arn: str,
        spec: StreamSource,
        source: Source,
        invoke: Invoke,
        send_failure: SendFailure | None,
        on_change: OnChange,
        *,
        parallel: int = 10,
        retry_base: float = 1.0,
        retry_cap: float = 60.0,
        lag_interval: float = 1.0,
    ) -> None:
        self.trigger = trigger
        self.function_arn = function_arn
        self.spec = spec
        self.source = source
        self.invoke = invoke
        self.send_failure = send_failure
        self.on_change = on_change
        self.parallel = 1 if spec.ordered else max(1, parallel)
        self.retry_base, self.retry_cap = retry_base, retry_cap
        self.lag_interval = lag_interval
        self.health = SourceHealth()

    async def run(self, stop: asyncio.Event) -> None:
        delay = 1.0
        while not stop.is_set():
            try:
                await self.source.open()
            except SourceUnavailable as down:
                await self._set_health(False, str(down))
                if await wait_or_stop(stop, delay):
                    return
                delay = min(delay * 2, 30.0)
                continue
            delay = 1.0
            await self._set_health(True, f"reading {self.source.description}")
            try:
                await self._consume(stop)
            except SourceUnavailable as down:
                await self._set_health(False, str(down))
            finally:
                await self.source.close()

    async def _set_health(self, healthy: bool, message: str) -> None:
        if (self.health.healthy, self.health.message) == (healthy, message):
            return
        self.health.healthy, self.health.message = healthy, message
        if healthy:
            log.info("%s/%s: %s", *self.trigger, message)
        else:
            log.warning("%s/%s: the source is unavailable: %s", *self.trigger, message)
        await self.on_change(self.health)

    async def _consume(self, stop: asyncio.Event) -> None:
        slots = asyncio.Semaphore(self.parallel)
        running: set[asyncio.Task[None]] = set()
        lags = asyncio.create_task(self._report_lag(stop))
        try:
            while not stop.is_set():
                if lags.done():
                    lags.result()  # raises the SourceUnavailable that ended it
                # A slot first: fetched records would wait for one without heartbeats,
                # and the source would hand them out again meanwhile.
                await slots.acquire()
                try:
                    records = await self.source.fetch(
                        self.spec.batch_size, self.spec.batch_window_seconds
                    )
                except BaseException:
                    slots.release()
                    raise
                if not records:
                    slots.release()
                    continue
                task = asyncio.create_task(self._batch(records))
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(lambda _: slots.release())
                if self.spec.ordered:
                    await task  # one batch in flight: a failing record holds the rest back
        finally:
            if running:
                await asyncio.wait(running)
            lags.cancel()
            with contextlib.suppress(asyncio.CancelledError, SourceUnavailable):
                await lags
        for task in running:
            task.result()

    async def _report_lag(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            lag = await self.source.lag()
            if lag != self.health.lag:
                self.health.lag = lag
                await self.on_change(self.health)
            await wait_or_stop(stop, self.lag_interval)

    async def _batch(self, records: list[Record]) -> None:
        holding = getattr(self.source, "holding", None)
        ids = {record.id for record in records}
        if holding is not None:
            holding.update(ids)
        keeper = asyncio.create_task(self._keep(records))
        try:
            await self._run_batch(records)
        finally:
            keeper.cancel()
            if holding is not None:
                holding.difference_update(ids)

    async def _keep(self, records: Sequence[Record]) -> None:
        while True:
            await asyncio.sleep(self.source.hold_seconds / 3)
            await self.source.keep(records)

    async def _run_batch(self, records: list[Record]) -> None:
        spec = self.spec
        max_attempts = 1 + spec.max_retry_attempts
        stale = [r for r in records if too_old(r, spec.max_record_age_seconds)]
        poison = [r for r in records if r not in stale and r.deliveries > max_attempts]
        await self._give_up(stale, "RecordAgeExceeded", 0, None)
        await self._give_up(poison, "RetryAttemptsExhausted", max_attempts, None)
        pending = [r for r in records if r not in stale and r not in poison]
        attempt = 1
        while pending:
            status, headers, body = await self.invoke(batch_event(pending))
            verdict = judge_reply(
                pending,
                status,
                body,
                report_item_failures=spec.report_batch_item_failures,
                ordered=spec.ordered,
                gateway_error=headers.get(HTTP_GATEWAY_ERROR),
            )
            if verdict.succeeded:
                await self.source.ack(verdict.succeeded)
                self.health.delivered += len(verdict.succeeded)
                self.health.last_delivery = time.time()
                await self.on_change(self.health)
            pending = verdict.failed
            if not pending:
                return
            if verdict.throttled:
                # The platform could not run it yet (cold start, a full queue, replicas that
                # cannot start): wait, without using an attempt.
                retry_after = headers.get("Retry-After", "")
                await asyncio.sleep(float(retry_after) if retry_after.isdigit() else 1.0)
            elif attempt >= max_attempts:
                await self._give_up(pending, "RetryAttemptsExhausted", attempt, verdict.error)
                return
            else:
                attempt += 1
                await asyncio.sleep(self._backoff(attempt - 1))
            expired = [r for r in pending if too_old(r, spec.max_record_age_seconds)]
            if expired:
                await self._give_up(expired, "RecordAgeExceeded", attempt, verdict.error)
                pending = [r for r in pending if r not in expired]

    def _backoff(self, retry: int) -> float:
        delay = min(self.retry_cap, self.retry_base * 2 ** max(0, retry - 1))
        return float(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not a secret

    async def _give_up(
        self,
        records: Sequence[Record],
        condition: str,
        attempts: int,
        error: ErrorBody | None,
    ) -> None:
        """Send records to onFailure (or log them when there is none), then acknowledge:
        a record that failed for good must not block the stream for ever."""
        if not records:
            return
        if self.send_failure is None:
            log.error(
                "%s/%s: %d record(s) failed for good (%s) and no onFailure is set; dropped: %s",
                *self.trigger,
                len(records),
                condition,
                ", ".join(r.id for r in records[:20]),
            )
        # One failure record per MAX_RECORDS_IN_FAILURE: none is acknowledged unsent.
        for start in range(0, len(records) if self.send_failure else 0, MAX_RECORDS_IN_FAILURE):
            chunk = records[start : start + MAX_RECORDS_IN_FAILURE]
            record = failure_record(
                function_arn=self.function_arn,
                trigger=f"{self.trigger[0]}/{self.trigger[1]}",
                condition=condition,
                attempts=attempts,
                records=chunk,
                error=error,
                now=time.time(),
            )
            assert self.send_failure is not None
            if not await self.send_failure(record):
                # Only the ids: the records' data may be personal and logs are widely read.
                log.error(
                    "%s/%s: onFailure did not take %d record(s) (%s): %s",
                    *self.trigger,
                    len(chunk),
                    condition,
                    ", ".join(r.id for r in chunk),
                )
        await self.source.ack(records)
        self.health.failed += len(records)
        await self.on_change(self.health)
