"""The autoscaler as a service: gateways POST their per-function stats to ``/stats``; every
second (and at once for a cold request) each Function gets a decision, applied through the
platform's "set this function's replica count" seam.

Only the leader decides (``leadership``): a standby hands each report it receives to the
leader named by the Lease, or answers 503 while there is none, and the sender sends again
at its next interval (a gateway keeps re-reporting its cold requests until one is taken).

Several gateway replicas may report: their numbers are summed, and a gateway that has not
reported for ``gateway_ttl`` seconds is forgotten.

Cost: a tick is linear in the Functions (one dictionary lookup per reporting gateway
each, a decision only for those that are not idle at zero) and yields to the event loop
every ``TICK_SLICE`` Functions, so 10,000 Functions never hold the loop for long; a cold
request costs one lookup, not a pass over every Function. State is per Function: the
samples of ``autoscaler.ScalerState`` and a lock while a decision is in progress, both
dropped with ``forget`` when the Function goes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from hanshu_api.error_body import ErrorBody
from hanshu_api.keyed_locks import KeyedLocks
from hanshu_api.models import Scaling
from hanshu_api.platform import FunctionKey, ReplicaScaler
from hanshu_api.stats_report import FunctionStat, Outcomes, StatsReport
from prometheus_client import Histogram

from .decisions import Decision, Observation, Policy, ScalerState, decide, observe, stays_at_zero
from .forwarding import ReportForwarder
from .leadership import AlwaysLeader, Leadership

log = logging.getLogger("hanshu.autoscaler")

COLD_DECISION = Histogram(
    "hanshu_autoscaler_cold_decision_seconds",
    "From a cold request's arrival at the gateway to the scale-up being issued.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)

OnScaled = Callable[[FunctionKey, Decision, int], Awaitable[None]]
# Each reported key's outcome figures (the canary controller's input).
OnOutcomes = Callable[[FunctionKey, Outcomes], None]
# Functions decided between two yields to the event loop, within one tick.
TICK_SLICE = 256


@dataclass
class _GatewayReport:
    received: float
    functions: dict[FunctionKey, FunctionStat] = field(default_factory=dict)


class AutoscalerService:
    def __init__(
        self,
        scaler: ReplicaScaler,
        functions: Callable[[], Iterable[tuple[FunctionKey, Scaling]]],
        *,
        scaling_of: Callable[[FunctionKey], Scaling | None] | None = None,
        policy: Policy | None = None,
        on_scaled: OnScaled | None = None,
        clock: Callable[[], float] = time.monotonic,
        gateway_ttl: float = 3.0,
        interval: float = 1.0,
        leadership: Leadership | None = None,
        on_outcomes: OnOutcomes | None = None,
    ) -> None:
        self.scaler = scaler
        self.functions = functions
        # One Function's scaling, for a cold request: a lookup where the caller has one,
        # else a pass over ``functions``.
        self.scaling_of = scaling_of or (lambda key: dict(functions()).get(key))
        self.policy = policy or Policy()
        self.on_scaled = on_scaled
        self.on_outcomes = on_outcomes
        self.clock = clock
        self.gateway_ttl = gateway_ttl
        self.interval = interval
        self.started_at = clock()
        self.cold_decision_seconds: list[float] = []  # recent, for benchmarks and tests
        self._gateways: dict[str, _GatewayReport] = {}
        self._states: dict[FunctionKey, ScalerState] = {}
        self._locks: KeyedLocks[FunctionKey] = KeyedLocks()
        self._reporting: set[asyncio.Task[None]] = set()
        # One process alone (dev mode, tests) is always the leader.
        self.leadership: Leadership = leadership or AlwaysLeader()
        self._forwarder = ReportForwarder()

    # -- intake ---------------------------------------------------------------------------

    def ingest(self, report: StatsReport | Mapping[str, Any]) -> list[tuple[FunctionKey, float]]:
        """Store one reporter's report; returns the cold (function, since) pairs in it.
        A report as JSON is parsed first: StatsInvalid names what is wrong with it."""
        if not isinstance(report, StatsReport):
            report = StatsReport.parse(report)
        functions = {stat.key: stat for stat in report.functions}
        if self.on_outcomes is not None:
            for stat in report.functions:
                if stat.outcomes is not None:
                    self.on_outcomes(stat.key, stat.outcomes)
        self._gateways[report.reporter] = _GatewayReport(self.clock(), functions)
        return [(cold.key, cold.since) for cold in report.cold]

    async def handle_stats(self, request: web.Request) -> web.Response:
        if not self.leadership.is_leader():
            return await self._forwarder.forward(request, self.leadership.leader_url())
        try:
            cold = self.ingest(await request.json())
        except ValueError as error:  # not JSON, or StatsInvalid
            body = ErrorBody("InvalidStats", f"malformed stats report: {error}")
            return web.json_response(body.as_dict(), status=400)
        for key, since in cold:
            await self.wake(key, since)
        return web.Response(status=204)

    async def close(self) -> None:
        await self._forwarder.close()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/stats", self.handle_stats)
        return app

    def elected(self) -> None:
        """Leadership begins: what this replica remembers of samples predates it, so the
        decisions start afresh, and (as after a restart) nothing goes to zero before a
        full stable window of the reports that now come here."""
        self.started_at = self.clock()
        self._states.clear()
        self._gateways.clear()

    # -- decisions ------------------------------------------------------------------------

    def observation(self, key: FunctionKey) -> Observation:
        self._forget_silent_gateways()
        return self._observation(key)

    def _forget_silent_gateways(self) -> None:
        now = self.clock()
        for gateway, report in list(self._gateways.items()):
            if now - report.received > self.gateway_ttl:
                log.info(
                    "forgetting gateway %s: no report for %.1fs", gateway, now - report.received
                )
                del self._gateways[gateway]

    def _observation(self, key: FunctionKey) -> Observation:
        in_flight = queued = 0
        idle: list[float] = []
        for report in self._gateways.values():
            stats = report.functions.get(key)
            if stats is None:
                continue
            in_flight += stats.in_flight
            queued += stats.queued
            if stats.idle_for is not None:
                idle.append(stats.idle_for)
        return Observation(float(in_flight + queued), queued, min(idle) if idle else None)

    def _state(self, key: FunctionKey) -> ScalerState:
        if key not in self._states:
            self._states[key] = ScalerState(started_at=self.started_at)
        return self._states[key]

    async def _apply(self, key: FunctionKey, decision: Decision, current: int) -> None:
        log.info(
            "scaling %s/%s %d -> %d: %s (%s)",
            key[0],
            key[1],
            current,
            decision.replicas,
            decision.reason,
            decision.message,
        )
        await self.scaler.set_replicas(key, decision.replicas)
        if self.on_scaled is not None:
            # The status write and the Event say what happened; nothing waits on them: not
            # the gateway's report (its next cold report queues behind this one), not the
            # next decision for this Function (it holds the Function's lock).
            report = asyncio.create_task(self._report(key, decision, current))
            self._reporting.add(report)
            report.add_done_callback(self._reporting.discard)

    async def _report(self, key: FunctionKey, decision: Decision, current: int) -> None:
        assert self.on_scaled is not None
        try:
            await self.on_scaled(key, decision, current)
        except Exception:
            log.exception("reporting the scaling of %s/%s failed", *key)

    async def wake(self, key: FunctionKey, since: float) -> None:
        """A cold request is waiting: decide now instead of at the next tick."""
        if not self.leadership.is_leader():
            return
        scaling = self.scaling_of(key)
        if scaling is None:
            return
        async with self._locks.held(key):
            current = self.scaler.current_replicas(key) or 0
            if current > 0:
                return  # already waking (or awake): the endpoint will appear
            decision = decide(
                self._state(key), self.observation(key), current, scaling, self.clock(), self.policy
            )
            if decision.changes(current):
                if since:
                    latency = max(0.0, time.time() - since)
                    COLD_DECISION.observe(latency)
                    self.cold_decision_seconds = [*self.cold_decision_seconds[-999:], latency]
                await self._apply(key, decision, current)

    def forget(self, key: FunctionKey) -> None:
        """The Function is gone: drop what the autoscaler remembered of it."""
        self._states.pop(key, None)

    async def tick(self) -> None:
        now = self.clock()
        self._forget_silent_gateways()
        if not self.leadership.is_leader():
            return
        for index, (key, scaling) in enumerate(list(self.functions())):
            if index and index % TICK_SLICE == 0:
                await asyncio.sleep(0)  # let watch events and requests in between
            async with self._locks.held(key):
                current = self.scaler.current_replicas(key)
                if current is None:
                    continue
                observation = self._observation(key)
                state = self._state(key)
                observe(state, observation, now, self.policy)
                if stays_at_zero(observation, current, scaling):
                    continue
                decision = decide(state, observation, current, scaling, now, self.policy)
                if decision.changes(current) and self.leadership.is_leader():
                    try:
                        await self._apply(key, decision, current)
                    except Exception:
                        log.exception("scaling %s/%s failed", *key)

    async def run(self) -> None:
        next_tick = self.clock()
        while True:
            next_tick += self.interval
            try:
                await self.tick()
            except Exception:  # one bad tick must not stop the autoscaler
                log.exception("autoscaler tick failed")
            await asyncio.sleep(max(0.0, next_tick - self.clock()))
