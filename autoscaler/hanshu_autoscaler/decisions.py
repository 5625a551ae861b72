"""The scaling decision: a pure function of (state, stats, clock), after Knative's KPA.

Each tick the autoscaler feeds one observation per Function (in-flight + queued requests
summed over every gateway, and how long since the last response completed) and asks for a
decision. Nothing here reads a clock or does I/O, so every behaviour is tested on a
simulated clock.

- Stable mode: desired = ceil(average concurrency over the stable window / target).
- Panic mode: when the short panic window asks for >= ``panic_threshold`` x the current
  replicas, scale up on the panic window at once and never down while panicking; panic
  ends after a stable window without that pressure, and the stable average (still holding
  the burst) then brings the count down gradually, so the scale-up is not undone at once.
- Scale-down delay: a lower count must be wanted for the whole delay before it is applied.
- Scale to zero: only once nothing has been in flight or queued for the grace period,
  counted from the last completed response; a cold request wakes the Function at once.
- After a restart, nothing is scaled to zero before a full stable window of fresh stats.

Cost: a Function's state holds one sample per tick of the stable window (60 by default)
and one desired count per tick of its scale-down delay. An idle tick's sample is the one
tuple every idle Function shares (``idle_sample``): 10,000 idle Functions cost a list slot
each per tick (5 MiB for a 60 s window), not a tuple and two floats each (67 MiB).
"""

from __future__ import annotations

import functools
import math
from collections import deque
from dataclasses import dataclass, field

from hanshu_api.models import Scaling


@dataclass(frozen=True, slots=True)
class Policy:
    stable_window: float = 60.0
    panic_window: float = 6.0
    panic_threshold: float = 2.0


@dataclass(frozen=True, slots=True)
class Observation:
    """One tick's stats for one Function, summed over the gateways that reported."""

    concurrency: float  # requests in flight + queued
    queued: int = 0
    idle_for: float | None = None  # seconds since the last response completed; None: busy


@dataclass(frozen=True, slots=True)
class Decision:
    replicas: int
    reason: str
    message: str

    def changes(self, current: int) -> bool:
        return self.replicas != current


@dataclass(slots=True)
class ScalerState:
    """What one Function's autoscaler remembers between ticks. ``recent_desired`` is a
    list until a decision needs it (an empty deque is 624 bytes, and most of 10,000
    Functions idle at zero never get a decision)."""

    started_at: float
    # A list, not a deque: 60 samples in a list are 0.5 KiB, in a deque 1.1 KiB.
    samples: list[tuple[float, float]] = field(default_factory=list)
    recent_desired: deque[tuple[float, int]] | None = None
    panic_since: float | None = None
    panic_peak: int = 0
    last_active: float | None = None


def _average(samples: list[tuple[float, float]], since: float) -> float:
    window = [value for at, value in samples if at > since]
    return sum(window) / len(window) if window else 0.0


@functools.lru_cache(maxsize=1)
def idle_sample(now: float) -> tuple[float, float]:
    """The sample of a tick with nothing in flight: one tuple for every Function."""
    return (now, 0.0)


def observe(state: ScalerState, observation: Observation, now: float, policy: Policy) -> None:
    """Record one tick's observation (mutates only ``state``)."""
    concurrency = observation.concurrency
    samples = state.samples
    samples.append(idle_sample(now) if concurrency == 0 else (now, concurrency))
    expired = 0
    while expired < len(samples) and samples[expired][0] <= now - policy.stable_window:
        expired += 1
    if expired:
        del samples[:expired]
    if observation.concurrency > 0:
        state.last_active = now
    elif observation.idle_for is not None:
        finished = now - observation.idle_for
        state.last_active = (
            finished if state.last_active is None else max(state.last_active, finished)
        )


def stays_at_zero(observation: Observation, current: int, scaling: Scaling) -> bool:
    """Whether ``decide`` would keep a Function at zero with nothing to learn from it:
    no replica, nothing in flight or queued, no minimum. Most of 10,000 Functions are so
    on every tick; the autoscaler records their sample and skips the decision."""
    return current == 0 and observation.concurrency == 0 and scaling.min_replicas == 0


def decide(
    state: ScalerState,
    observation: Observation,
    current: int,
    scaling: Scaling,
    now: float,
    policy: Policy = Policy(),
) -> Decision:
    """The replica count for this tick and why. Call ``observe`` first."""
    target = scaling.target_concurrency
    floor, ceiling = scaling.min_replicas, scaling.max_replicas

    if current == 0 and (observation.queued > 0 or observation.concurrency > 0):
        wanted = min(max(1, math.ceil(observation.concurrency / target), floor), ceiling)
        if state.recent_desired is None:
            state.recent_desired = deque()
        state.recent_desired.append((now, wanted))
        return Decision(
            wanted, "ColdStart", f"{observation.queued} request(s) waiting with no replica running"
        )

    stable = _average(state.samples, now - policy.stable_window)
    panic = _average(state.samples, now - policy.panic_window)
    want_stable = math.ceil(stable / target)
    want_panic = math.ceil(panic / target)

    over = current > 0 and want_panic / current >= policy.panic_threshold
    if over:
        if state.panic_since is None:
            state.panic_since = now
            state.panic_peak = current
        state.panic_since = now  # panic lasts a stable window past the last pressure
    elif state.panic_since is not None and now - state.panic_since >= policy.stable_window:
        state.panic_since = None
        state.panic_peak = 0

    if state.panic_since is not None:
        wanted = max(want_panic, state.panic_peak, current)
        state.panic_peak = wanted
        reason = "Burst"
        message = (
            f"panic: {panic:.1f} concurrent over the last {policy.panic_window:g}s, "
            f"target {target} per replica"
        )
    else:
        wanted = want_stable
        reason = "Load"
        message = (
            f"{stable:.1f} concurrent on average over {policy.stable_window:g}s, "
            f"target {target} per replica"
        )

    # Scale-down delay: apply the highest count wanted within the delay window.
    if state.recent_desired is None:
        state.recent_desired = deque()
    recent = state.recent_desired
    recent.append((now, wanted))
    while recent and recent[0][0] < now - scaling.scale_down_delay_seconds:
        recent.popleft()
    delayed = max(value for _, value in recent)
    if delayed > wanted and delayed <= current:
        wanted = delayed
        message += f"; holding {delayed} for the scale-down delay"

    # Idleness, not the average, decides zero: counted from the last completed response
    # (or from start-up, when nothing was seen since), and only with a full window of stats.
    idle = now - (state.last_active if state.last_active is not None else state.started_at)
    warmed_up = now - state.started_at >= policy.stable_window
    if idle >= scaling.scale_to_zero_grace_seconds and warmed_up:
        wanted = 0
        state.panic_since = None
        reason = "Idle"
        message = (
            f"no request in flight or queued for {idle:.0f}s "
            f"(scaleToZeroGracePeriod {scaling.scale_to_zero_grace_seconds:g}s)"
        )
    elif wanted == 0 and current > 0:
        wanted = 1
        message = (
            f"idle for {idle:.0f}s; scale to zero after "
            f"{scaling.scale_to_zero_grace_seconds:g}s idle"
        )
        if not warmed_up:
            message += " and a full stable window of stats since the autoscaler started"

    bounded = min(max(wanted, floor), ceiling)
    if bounded != wanted:
        reason = "MinReplicas" if bounded > wanted else "MaxReplicas"
        message += f"; clamped to {bounded} by scaling.{reason[0].lower()}{reason[1:]}"
    return Decision(bounded, reason, message)
