"""Event-loop lag: how much later than asked the loop runs a callback that is due now.

Every component does its work on one asyncio loop, so a long stretch of synchronous work
(a re-list of 10,000 objects, a large JSON body) stalls everything else: requests, watches,
the NATS heartbeat, the probes. ``LoopLag`` wakes every ``interval`` and records how late it
woke; the p99 and the max over the last ``window`` seconds are exported as the gauge
``hanshu_event_loop_lag_seconds{statistic="p99"|"max"}`` and shown by the health checks.

The ticks also tell a busy process from a stuck one: ``stalled_for()`` is how long ago the
loop last ran a tick. A process that catches up in slices keeps ticking, with a high lag
but alive; only a loop that ran nothing for a long time is stuck.

Cost: one wake per interval and one float per sample (``window / interval`` of them).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

DEFAULT_INTERVAL_SECONDS = 0.1
DEFAULT_WINDOW_SECONDS = 60.0
METRIC_NAME = "hanshu_event_loop_lag_seconds"
# The longest a slice of long work holds the loop. Several loads run at once (one per
# watch), each taking its slice in turn, and a due callback waits for all of them: small
# slices keep that sum small; a yield costs about 20 µs, nothing beside 5 ms.
SLICE_SECONDS = 0.005


@dataclass(frozen=True, slots=True)
class LagSummary:
    p99: float
    max: float
    samples: int

    def as_dict(self) -> dict[str, float]:
        return {"p99Seconds": round(self.p99, 4), "maxSeconds": round(self.max, 4)}


def summarize(lags: Iterable[float]) -> LagSummary:
    """The 99th percentile (nearest rank) and the max of the lags, 0 for none."""
    ordered = sorted(lags)
    if not ordered:
        return LagSummary(0.0, 0.0, 0)
    rank = max(1, math.ceil(0.99 * len(ordered)))
    return LagSummary(ordered[rank - 1], ordered[-1], len(ordered))


class LoopLag:
    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        window: float = DEFAULT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._samples: collections.deque[float] = collections.deque(
            maxlen=max(1, int(window / interval))
        )
        self.last_tick = clock()

    def record(self, lag: float) -> None:
        self._samples.append(max(0.0, lag))
        self.last_tick = self._clock()

    def summary(self) -> LagSummary:
        return summarize(self._samples)

    def stalled_for(self) -> float:
        """Seconds since the loop last ran a tick (read from any thread)."""
        return max(0.0, self._clock() - self.last_tick)

    async def run(self) -> None:
        while True:
            asked = self._clock()
            await asyncio.sleep(self.interval)
            self.record(self._clock() - asked - self.interval)

    def collector(self) -> _LagCollector:
        """A prometheus_client collector of this gauge (register it once per process)."""
        return _LagCollector(self)


class _LagCollector:
    def __init__(self, lag: LoopLag) -> None:
        self._lag = lag

    def collect(self) -> Iterable[object]:
        from prometheus_client.core import GaugeMetricFamily

        summary = self._lag.summary()
        family = GaugeMetricFamily(
            METRIC_NAME,
            "How late the event loop ran a due callback over the last minute",
            labels=["statistic"],
        )
        family.add_metric(["p99"], summary.p99)
        family.add_metric(["max"], summary.max)
        yield family

    def describe(self) -> Iterable[object]:
        return self.collect()


_process_lag: LoopLag | None = None
_ticking: asyncio.Task[None] | None = None


def watch_loop() -> LoopLag:
    """The process's loop-lag meter, ticking on the running loop, its gauge registered in
    the default registry once. Components that share a process (dev mode runs the gateway
    and the dispatcher on one loop) share the meter, as they share the loop."""
    global _process_lag, _ticking
    if _process_lag is None:
        from prometheus_client import REGISTRY

        _process_lag = LoopLag()
        REGISTRY.register(_process_lag.collector())  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    if _ticking is None or _ticking.done() or _ticking.get_loop() is not loop:
        _ticking = loop.create_task(_process_lag.run())
    return _process_lag


def stop_watching_loop() -> None:
    """Stop the meter's task: a process that shuts down its loop itself (kopf waits for
    every task left running, 5 s, before it exits) ends it here."""
    global _ticking
    if _ticking is not None and not _ticking.done():
        _ticking.cancel()
    _ticking = None


class Slices:
    """Long synchronous work cut into slices: ``await slices.pause()`` between items gives
    the loop back once ``budget`` seconds of work have run, so a list of 10,000 objects
    never holds requests, watches and probes for more than a slice."""

    def __init__(self, budget: float = SLICE_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._budget = budget
        self._clock = clock
        self._until = clock() + budget

    async def pause(self) -> None:
        if self._clock() >= self._until:
            await asyncio.sleep(0)
            self._until = self._clock() + self._budget


_pausers = 0
_collector_was_enabled = True


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Load a large list without the cyclic collector's full passes, then keep what was
    loaded out of its sight (``gc.freeze``).

    Loading 10,000 objects makes the collector walk everything alive again each time the
    heap grows by a quarter: passes of 60-200 ms on the loop, measured by
    ``bench/scale_bench.py``. Reference counting still frees what is dropped meanwhile;
    nested and concurrent loads (one per watch) share one pause. The price: a reference
    cycle that is frozen and later dropped stays until ``gc.unfreeze()``; loaded objects
    (parsed JSON, specs) hold no cycles, and full lists are rare (start-up, a watch that
    lost its position)."""
    global _pausers, _collector_was_enabled
    if _pausers == 0:
        _collector_was_enabled = gc.isenabled()
        gc.disable()
    _pausers += 1
    try:
        yield
    finally:
        _pausers -= 1
        if _pausers == 0:
            gc.freeze()
            if _collector_was_enabled:  # as it was before the first load began
                gc.enable()
