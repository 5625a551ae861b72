"""The streams users already run, read in batches: a NATS JetStream stream through a
durable pull consumer, and a Redis Stream through a consumer group.

Both keep what is not acknowledged: JetStream redelivers after the ack wait; Redis keeps it
in the group's pending list, and a consumer reclaims entries another consumer held too long
(XAUTOCLAIM), so a consumer killed mid-batch loses nothing. Held records get heartbeats
while their batch is retried, so neither source hands them out twice meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any, Protocol

import nats
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from .stream_records import Record, decode, decode_fields

# How long one fetch waits for a first record before looking again (and at its stop flag).
POLL_SECONDS = 2.0
# What is already there, taken at once: a pull that ends this soon returns what it found.
AVAILABLE_SECONDS = 0.005
# A record not acknowledged nor kept alive this long is another consumer's to take over
# (the default; the dispatcher gives its HANSHU_ACK_WAIT_SECONDS).
HOLD_SECONDS = 60.0


class SourceUnavailable(Exception):
    """The source cannot be reached or read; the message says what the server said."""


class Source(Protocol):
    description: str
    hold_seconds: float

    async def open(self) -> None: ...
    async def fetch(self, count: int, window: float) -> list[Record]: ...
    async def ack(self, records: Sequence[Record]) -> None: ...
    async def keep(self, records: Sequence[Record]) -> None: ...
    async def lag(self) -> int: ...
    async def close(self) -> None: ...


async def _gather(first: list[Record], more: Any, count: int, window: float) -> list[Record]:
    """Records until ``count`` or until ``window`` seconds after the first arrived."""
    records = first
    deadline = time.monotonic() + window
    while len(records) < count and window > 0:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        records += await more(count - len(records), left)
    return records


class NatsStreamSource:
    def __init__(
        self,
        url: str,
        stream: str,
        subject: str,
        durable: str,
        in_flight: int = -1,
        hold_seconds: float = HOLD_SECONDS,
    ) -> None:
        self.url, self.stream, self.subject, self.durable = url, stream, subject, durable
        self.in_flight = in_flight
        self.hold_seconds = hold_seconds
        self.description = f"NATS stream {stream}" + (f" ({subject})" if subject else "")
        self._client: Any = None
        self._subscription: Any = None

    async def open(self) -> None:
        try:
            self._client = await nats.connect(
                self.url, connect_timeout=3, max_reconnect_attempts=-1, reconnect_time_wait=1
            )
            js = self._client.jetstream(timeout=5)
            await js.stream_info(self.stream)
            config = ConsumerConfig(
                durable_name=self.durable,
                filter_subject=self.subject or None,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self.hold_seconds,
                max_deliver=-1,  # poison records are ours to recognise (their delivery count)
                # Ordered (in_flight = batchSize): nothing after the batch in hand is handed
                # out, even to a consumer that took over from one that died holding it.
                max_ack_pending=self.in_flight,
            )
            with contextlib.suppress(nats.js.errors.BadRequestError):
                await js.add_consumer(self.stream, config)
            self._subscription = await js.pull_subscribe_bind(self.durable, stream=self.stream)
        except (OSError, TimeoutError, nats.errors.Error) as error:
            await self.close()
            raise SourceUnavailable(f"{self.description} at {self.url}: {error}") from None

    def _record(self, message: Msg) -> Record:
        meta = message.metadata
        data, encoding = decode(message.data)
        sequence = meta.sequence.stream
        return Record(
            id=f"{self.stream}:{sequence}",
            source=f"nats:{self.stream}",
            data=data,
            encoding=encoding,
            attributes={
                "subject": message.subject,
                "sequence": sequence,
                "headers": dict(message.headers or {}),
            },
            timestamp=meta.timestamp.timestamp(),
            deliveries=meta.num_delivered,
            handle=message,
        )

    async def _fetch(self, count: int, wait: float) -> list[Record]:
        try:
            messages = await self._subscription.fetch(count, timeout=max(0.05, wait))
        except (NatsTimeout, TimeoutError):
            return []
        except nats.errors.Error as error:
            raise SourceUnavailable(f"{self.description}: {error}") from None
        return [self._record(message) for message in messages]

    async def fetch(self, count: int, window: float) -> list[Record]:
        # One record first: a pull for a whole batch on an idle stream would be held by
        # the server until the batch is full (or the poll ends), whatever the window says.
        first = await self._fetch(1, POLL_SECONDS)
        if not first:
            return []
        if count > 1:
            first += await self._fetch(count - 1, AVAILABLE_SECONDS)
        return await _gather(first, self._fetch, count, window)

    async def ack(self, records: Sequence[Record]) -> None:
        for record in records:
            await record.handle.ack()

    async def keep(self, records: Sequence[Record]) -> None:
        for record in records:
            with contextlib.suppress(nats.errors.Error):
                await record.handle.in_progress()

    async def lag(self) -> int:
        try:
            info = await self._client.jetstream().consumer_info(self.stream, self.durable)
        except (TimeoutError, nats.errors.Error) as error:
            raise SourceUnavailable(f"{self.description}: {error}") from None
        return int(info.num_pending or 0)

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None


class RedisStreamSource:
    def __init__(
        self,
        url: str,
        stream: str,
        group: str,
        consumer: str,
        start_from: str = "latest",
        hold_seconds: float = HOLD_SECONDS,
    ) -> None:
        self.url, self.stream, self.group, self.consumer = url, stream, group, consumer
        self.start_from = start_from
        self.hold_seconds = hold_seconds
        self.description = f"Redis stream {stream} (group {group})"
        self._redis: Any = None
        # redis is imported by the first Redis stream Trigger, not with the dispatcher: it
        # costs every dispatcher 7 MiB, and most never read a Redis stream.
        self._redis_error: type[Exception] = OSError
        # Where the read of this consumer's own pending entries has got to; None: done.
        # Each read of an entry counts as a delivery, so they are read once per open.
        self._own_cursor: str | None = "0"
        self.holding: set[str] = set()  # ids in a batch right now: never reclaimed from us

    async def open(self) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import ResponseError

        self._redis_error = aioredis.RedisError
        try:
            self._redis = aioredis.from_url(self.url, socket_connect_timeout=3)
        except ValueError as bad:  # not a redis:// URL at all
            raise SourceUnavailable(f"{self.description}: the URL is not valid: {bad}") from None
        try:
            start = "$" if self.start_from == "latest" else "0"
            try:
                await self._redis.xgroup_create(self.stream, self.group, id=start, mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise
        except (OSError, self._redis_error) as error:
            await self.close()
            raise SourceUnavailable(f"{self.description}: {error}") from None
        # After a restart under the same name, what this consumer held comes first.
        self._own_cursor = "0"

    def _record(self, entry_id: bytes, fields: Any, deliveries: int) -> Record:
        ident = entry_id.decode()
        data, encoding = decode_fields(fields)
        return Record(
            id=ident,
            source=f"redis:{self.stream}",
            data=data,
            encoding=encoding,
            attributes={"stream": self.stream, "group": self.group},
            timestamp=int(ident.split("-", 1)[0]) / 1000,
            deliveries=deliveries,
            handle=ident,
        )

    async def _deliveries(self, ids: Sequence[bytes]) -> dict[bytes, int]:
        counts: dict[bytes, int] = {}
        for entry_id in ids:
            found = await self._redis.xpending_range(
                self.stream, self.group, min=entry_id, max=entry_id, count=1
            )
            counts[entry_id] = int(found[0]["times_delivered"]) if found else 1
        return counts

    async def _read(self, count: int, wait: float) -> list[Record]:
        try:
            if self._own_cursor is not None:
                mine = await self._redis.xreadgroup(
                    self.group, self.consumer, {self.stream: self._own_cursor}, count=count
                )
                history = mine[0][1] if mine else []
                if history:
                    self._own_cursor = history[-1][0].decode()  # on from the last one
                else:
                    self._own_cursor = None
                entries = [e for e in history if e[1] and e[0].decode() not in self.holding]
                if entries:
                    counts = await self._deliveries([e[0] for e in entries])
                    return [self._record(i, f, counts[i]) for i, f in entries]
                if self._own_cursor is not None:
                    return []
            claimed = await self._redis.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=int(self.hold_seconds * 1000),
                start_id="0-0",
                count=count,
            )
            taken = [e for e in claimed[1] if e[1] and e[0].decode() not in self.holding]
            if taken:
                counts = await self._deliveries([e[0] for e in taken])
                return [self._record(i, f, counts[i]) for i, f in taken]
            fresh = await self._redis.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: ">"},
                count=count,
                block=max(1, int(wait * 1000)),
            )
        except (OSError, self._redis_error) as error:
            raise SourceUnavailable(f"{self.description}: {error}") from None
        return [self._record(i, f, 1) for i, f in (fresh[0][1] if fresh else [])]

    async def fetch(self, count: int, window: float) -> list[Record]:
        first = await self._read(count, POLL_SECONDS)
        if not first:
            return []
        return await _gather(first, self._read, count, window)

    async def ack(self, records: Sequence[Record]) -> None:
        if not records:
            return
        try:
            await self._redis.xack(self.stream, self.group, *[r.handle for r in records])
        except (OSError, self._redis_error) as error:
            raise SourceUnavailable(f"{self.description}: {error}") from None

    async def keep(self, records: Sequence[Record]) -> None:
        """Reset the idle time of held entries (JUSTID: their delivery count stays)."""
        with contextlib.suppress(OSError, self._redis_error):
            await self._redis.xclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=0,
                message_ids=[r.handle for r in records],
                justid=True,
            )

    async def lag(self) -> int:
        try:
            groups = await self._redis.xinfo_groups(self.stream)
        except (OSError, self._redis_error) as error:
            raise SourceUnavailable(f"{self.description}: {error}") from None
        for group in groups:
            name = group.get("name")
            if (name.decode() if isinstance(name, bytes) else name) == self.group:
                lag = group.get("lag")
                return int(lag or 0) + int(group.get("pending") or 0)
        return 0

    async def close(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless told to stop; True when stopping."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()
