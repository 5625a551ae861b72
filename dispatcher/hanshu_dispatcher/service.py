"""The dispatcher: finds the Functions with stored invocations, runs a worker for each,
fires the schedule Triggers of the catalog bucket (``schedules``), reads the stream Triggers
of theirs (``streams``), reports each Function's backlog and each stream's lag to the
autoscaler, and serves health and metrics.

A Function is found from the stream itself (its subjects with messages), checked every
``discover_interval`` and at once when the gateway sends a wake-up, so the dispatcher needs
no access to the Kubernetes API.

Cost: each discovery reads the stream's subject counts once, so it grows with the number
of Functions that have stored invocations; a worker (a pull consumer) runs only for those,
and stops when idle. Nothing is kept for a Function without stored invocations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web
from hanshu_api.invocations import STREAM, SUBJECT_PREFIX, WAKE_SUBJECT, function_of_subject
from hanshu_api.jetstream import (
    Invocations,
    ScheduleBuckets,
    StreamBuckets,
    StreamSettings,
    connect,
    ensure,
    ensure_schedule_buckets,
    ensure_stream_buckets,
)
from hanshu_api.loop_lag import LoopLag, watch_loop
from hanshu_api.platform import FunctionKey
from hanshu_api.stats_report import FunctionStat, StatsReport
from hanshu_api.tracing import tracer_from_env
from nats.errors import Error as NatsError
from nats.js.errors import BadRequestError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import metrics
from .config import DispatcherConfig
from .destinations import Destinations
from .gateway_client import InternalGateway
from .schedules import Schedules, TickSource, cron_ticks, fires_recorder, gateway_fire
from .streams import Streams
from .worker import FunctionWorker, consumer_config

log = logging.getLogger("hanshu.dispatcher")

# A worker with nothing to do for this long stops; the next stored invocation restarts it.
IDLE_WORKER_SECONDS = 60.0
# All dispatcher replicas report under one name: the autoscaler keeps the latest report
# instead of adding up the same backlog once per replica.
REPORTER_ID = "hanshu-dispatcher"


class Dispatcher:
    def __init__(self, config: DispatcherConfig, ticks: TickSource = cron_ticks) -> None:
        self.config = config
        self.ticks = ticks  # when schedules fire: their cron (a test ticks every second)
        # Spans only when OTEL_EXPORTER_OTLP_ENDPOINT is set (docs/operations.md, "Traces").
        self.tracer = tracer_from_env("hanshu-dispatcher")
        self.workers: dict[FunctionKey, tuple[FunctionWorker, asyncio.Task[None]]] = {}
        self.backlog: dict[FunctionKey, int] = {}
        self._store: Invocations | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._gateway: InternalGateway | None = None
        self.connected = False
        self.streams: Streams | None = None
        self.loop_lag: LoopLag | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
        )
        self._gateway = InternalGateway(
            self._session, self.config.gateway_internal_url, self.config.internal_token
        )
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.config.host, self.config.port).start()
        self._tasks.append(asyncio.create_task(self._main()))
        self.loop_lag = watch_loop()

    async def _main(self) -> None:
        client = await connect(self.config.nats.url, "hanshu-dispatcher", self._on_change)
        while True:
            try:
                self._store = await ensure(
                    client,
                    StreamSettings.of(self.config.nats, self.config.windows),
                )
                buckets = await ensure_schedule_buckets(client, self.config.nats.stream_replicas)
                streams = await ensure_stream_buckets(client, self.config.nats.stream_replicas)
                break
            except (NatsError, TimeoutError) as error:
                log.warning("cannot set up the JetStream stream (%s); trying again", error)
                await asyncio.sleep(1.0)
        await client.subscribe(WAKE_SUBJECT, cb=self._woken)
        assert self._session is not None
        assert self._gateway is not None
        self._destinations = Destinations(self._session, client, self._gateway)
        log.info("dispatching async invocations from %s", self.config.nats.url)
        if self.config.autoscaler_url:
            self._tasks.append(asyncio.create_task(self._report_backlog()))
        self._tasks.append(asyncio.create_task(self._fire_schedules(buckets)))
        self._tasks.append(asyncio.create_task(self._read_streams(streams)))
        while True:
            try:
                await self._discover()
            except (NatsError, TimeoutError) as error:
                log.warning("cannot read the stream's backlog (%s)", error)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.discover_interval_seconds):
                    await self._wake.wait()
            self._wake.clear()

    async def _fire_schedules(self, buckets: ScheduleBuckets) -> None:
        assert self._gateway is not None
        schedules = Schedules(
            buckets.catalog,
            gateway_fire(self._gateway),
            fires_recorder(buckets.fires),
            ticks=self.ticks,
        )
        while True:
            try:
                await schedules.run()
            except (NatsError, TimeoutError) as error:
                log.warning("lost the watch on the schedule catalog (%s); watching again", error)
                await asyncio.sleep(1.0)

    async def _read_streams(self, buckets: StreamBuckets) -> None:
        assert self._gateway is not None
        self.streams = Streams(
            buckets,
            self._gateway,
            self.config.nats.url,
            self.config.internal_token,
            self.config.stream_hold_seconds,
        )
        while True:
            try:
                await self.streams.run()
            except (NatsError, TimeoutError) as error:
                log.warning("lost the watch on the stream catalog (%s); watching again", error)
                await asyncio.sleep(1.0)

    def _on_change(self, connected: bool) -> None:
        self.connected = connected
        metrics.NATS_CONNECTED.set(1 if connected else 0)

    async def _woken(self, _message: Any) -> None:
        self._wake.set()

    async def _discover(self) -> None:
        """Start a worker for each Function with stored invocations; stop idle ones."""
        store = self._store
        assert store is not None
        info = await store.js.stream_info(STREAM, subjects_filter=f"{SUBJECT_PREFIX}.>")
        counts: dict[FunctionKey, int] = {}
        for subject, count in (info.state.subjects or {}).items():
            key = function_of_subject(subject)
            if key is not None:
                counts[key] = counts.get(key, 0) + count
        for key in set(self.backlog) - set(counts):
            # Forgotten, not set to 0: a label set per Function that ever had a backlog
            # would grow without bound on a cluster with thousands of Functions.
            with contextlib.suppress(KeyError):
                metrics.BACKLOG.remove(*key)
        self.backlog = counts
        for key, count in counts.items():
            metrics.BACKLOG.labels(*key).set(count)
            if key not in self.workers:
                await self._start_worker(key, store)
        now = time.monotonic()
        for key, (worker, task) in list(self.workers.items()):
            if task.done():
                del self.workers[key]
            elif (
                key not in counts
                and not worker.running
                and now - worker.last_message > IDLE_WORKER_SECONDS
            ):
                task.cancel()
                del self.workers[key]

    async def _start_worker(self, key: FunctionKey, store: Invocations) -> None:
        try:
            await store.js.add_consumer(STREAM, consumer_config(key, self.config))
        except BadRequestError as error:
            # Made by a dispatcher with other settings: it serves as it is.
            log.info("using the existing consumer of %s/%s (%s)", *key, error)
        assert self._gateway is not None
        worker = FunctionWorker(
            key, self.config, store, self._gateway, self._destinations, self.tracer
        )
        task = asyncio.create_task(worker.run())
        task.add_done_callback(lambda done, key=key: self._worker_ended(key, done))  # type: ignore[misc]
        self.workers[key] = (worker, task)
        log.info("dispatching async invocations of %s/%s", *key)

    def _worker_ended(self, key: FunctionKey, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("the worker of %s/%s stopped", *key, exc_info=task.exception())
            self._wake.set()  # started again at the next look

    async def _report_backlog(self) -> None:
        """The backlog as queued requests: an async burst wakes and scales a Function the
        way an HTTP burst does, and lets it go back to zero when the backlog is done."""
        url = self.config.autoscaler_url.rstrip("/") + "/stats"
        assert self._session is not None
        reported: set[FunctionKey] = set()
        while True:
            running = {key: len(worker.running) for key, (worker, _) in self.workers.items()}
            # In flight at the gateway is the gateway's to report: only what waits here.
            waiting = {key: max(0, n - running.get(key, 0)) for key, n in self.backlog.items()}
            keys = set(waiting) | reported
            report = StatsReport(
                REPORTER_ID,
                time.time(),
                tuple(FunctionStat(*key, queued=waiting.get(key, 0)) for key in sorted(keys)),
            ).encode()
            reported = {key for key, n in waiting.items() if n > 0}
            # Each stream's lag under its own reporter id (one per Trigger, whichever
            # dispatcher reads it).
            lags = self.streams.lag_reports() if self.streams is not None else []
            for body in (report, *(lag.encode() for lag in lags)):
                try:
                    async with self._session.post(
                        url, json=body, timeout=aiohttp.ClientTimeout(total=2)
                    ) as reply:
                        reply.raise_for_status()
                except (aiohttp.ClientError, TimeoutError) as error:
                    log.debug("cannot report the backlog to %s: %s", url, error)
            await asyncio.sleep(self.config.report_interval_seconds)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/backlog", self._backlog)
        return app

    async def _healthz(self, request: web.Request) -> web.Response:
        lag = self.loop_lag.summary().as_dict() if self.loop_lag else {}
        return web.json_response({"status": "alive", "eventLoopLag": lag})

    async def _readyz(self, request: web.Request) -> web.Response:
        if self._store is None or not self.connected:
            return web.json_response({"status": "waiting for NATS"}, status=503)
        return web.json_response({"status": "ready"})

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _backlog(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {"namespace": k[0], "name": k[1], "backlog": n}
                for k, n in sorted(self.backlog.items())
            ]
        )

    async def stop(self, grace_seconds: float = 20.0) -> None:
        """Stop taking invocations, let the running ones finish for a while; what is still
        running after that is delivered again once its heartbeats stop."""
        for task in self._tasks:
            task.cancel()
        for _, task in self.workers.values():
            task.cancel()
        running = [t for worker, _ in self.workers.values() for t in worker.running]
        if running:
            log.info("waiting up to %gs for %d running invocation(s)", grace_seconds, len(running))
            await asyncio.wait(running, timeout=grace_seconds)
        for task in [t for _, t in self.workers.values()] + self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._store is not None:
            await self._store.client.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        self.tracer.shutdown()  # the spans still batched go out before the exit
