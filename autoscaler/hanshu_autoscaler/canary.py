"""The canary's decision, pure: one alias's canary state, the new version's figures of the
window since the last look (``hanshu_api.stats_report.Outcomes``) and the time, to the
next state and what happened, with a reason a person can read. No I/O here: the
controller (``canary_controller``) brings the figures and writes the results.

The rules (docs/versions.md, "Canaries"):

- A canary starts at its first step: ``steps[0]`` percent of the alias's requests go to
  ``additionalVersion``. A change of the alias's versions or canary settings starts it
  again from the first step (whatever it had reached or decided).
- Each step lasts ``interval``. Figures add up over the step; once they hold at least
  ``minRequests`` requests they are judged at every look, so a bad version rolls back as
  soon as there is enough evidence, not at the end of the step.
- Judged: the error rate above ``maxErrorRate``, or the p99 latency above
  ``maxP99Latency``, rolls back: all of the alias's requests go to ``version`` again, and
  it stays so until the alias's spec changes.
- At the end of a step with too few requests it holds (the weight stays, the figures keep
  adding up) until there are enough; a canary with no traffic never moves on.
- At the end of a step with enough healthy requests it moves to the next step; after the
  last step it is promoted (the last step's weight stays, usually 100).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from hanshu_api.stats_report import Outcomes
from hanshu_api.versions import Alias, AliasRouting, Canary


class Phase(enum.StrEnum):
    PROGRESSING = "Progressing"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"


class Action(enum.StrEnum):
    """What one look did; the controller writes the status for every one but UNCHANGED."""

    STARTED = "CanaryStarted"
    STEPPED = "CanaryStepped"
    HELD = "CanaryHeld"  # the step is over but there are too few requests to judge it
    PROMOTED = "CanaryPromoted"
    ROLLED_BACK = "CanaryRolledBack"
    UNCHANGED = "Unchanged"


@dataclass(frozen=True, slots=True)
class CanaryState:
    alias: str
    fingerprint: str  # of the alias's spec it runs for (``fingerprint``)
    phase: Phase
    step: int  # index into canary.steps
    step_started: float  # clock seconds
    figures: Outcomes  # of the new version, over the current step
    message: str
    held: bool = False  # the step is over and waits for enough requests


@dataclass(frozen=True, slots=True)
class CanaryDecision:
    state: CanaryState
    action: Action
    routing: AliasRouting

    @property
    def message(self) -> str:
        return self.state.message


def fingerprint(alias: Alias) -> str:
    """What, changed, starts a canary again: its versions and its settings."""
    canary = dataclasses.asdict(alias.canary) if alias.canary is not None else None
    shape = [alias.version, alias.additional_version, canary]
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def routing_of(alias: Alias, state: CanaryState) -> AliasRouting:
    """Where the alias's requests go in this state."""
    if state.phase is Phase.ROLLED_BACK or alias.canary is None:
        return AliasRouting(alias.name, alias.version)
    weight = alias.canary.steps[state.step]
    return AliasRouting(alias.name, alias.version, alias.additional_version, weight)


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def breach(canary: Canary, figures: Outcomes) -> str | None:
    """The threshold the figures cross, with the figures; None while they are healthy or
    too few to judge."""
    if figures.requests < canary.min_requests:
        return None
    if figures.error_rate > canary.max_error_rate:
        return (
            f"error rate {_percent(figures.error_rate)} over {_percent(canary.max_error_rate)} "
            f"in the last {figures.requests} requests ({figures.errors} failed)"
        )
    if canary.max_p99_seconds is not None:
        p99 = figures.quantile(0.99)
        if p99 is not None and p99 > canary.max_p99_seconds:
            return (
                f"p99 latency {_ms(p99)} over {_ms(canary.max_p99_seconds)} "
                f"in the last {figures.requests} requests"
            )
    return None


def start(alias: Alias, now: float) -> CanaryState:
    assert alias.canary is not None
    steps = alias.canary.steps
    return CanaryState(
        alias.name,
        fingerprint(alias),
        Phase.PROGRESSING,
        0,
        now,
        Outcomes(),
        f"version {alias.additional_version} takes {steps[0]}% "
        f"(step 1 of {len(steps)}), version {alias.version} the rest",
    )


def decide_canary(
    state: CanaryState | None, alias: Alias, window: Outcomes, now: float
) -> CanaryDecision:
    """The next state of ``alias``'s canary, given the new version's figures since the last
    look. ``alias`` must have a canary (and so an additional version)."""
    canary = alias.canary
    assert canary is not None
    assert alias.additional_version is not None
    if state is None or state.fingerprint != fingerprint(alias):
        begun = start(alias, now)
        return CanaryDecision(begun, Action.STARTED, routing_of(alias, begun))
    if state.phase is not Phase.PROGRESSING:
        return CanaryDecision(state, Action.UNCHANGED, routing_of(alias, state))
    figures = state.figures + window
    crossed = breach(canary, figures)
    if crossed is not None:
        weight = canary.steps[state.step]
        failed = dataclasses.replace(
            state,
            phase=Phase.ROLLED_BACK,
            figures=figures,
            message=(
                f"rolled back to version {alias.version} at {weight}% on version "
                f"{alias.additional_version}: {crossed}"
            ),
        )
        return CanaryDecision(failed, Action.ROLLED_BACK, routing_of(alias, failed))
    going = dataclasses.replace(state, figures=figures)
    if now - state.step_started < canary.interval_seconds:
        return CanaryDecision(going, Action.UNCHANGED, routing_of(alias, going))
    if figures.requests < canary.min_requests:
        if state.held:
            return CanaryDecision(going, Action.UNCHANGED, routing_of(alias, going))
        held = dataclasses.replace(
            going,
            held=True,
            message=(
                f"holding version {alias.additional_version} at {canary.steps[state.step]}%: "
                f"{figures.requests} of the {canary.min_requests} requests needed to judge it"
            ),
        )
        return CanaryDecision(held, Action.HELD, routing_of(alias, held))
    healthy = _healthy(canary, figures)
    if state.step + 1 >= len(canary.steps):
        promoted = dataclasses.replace(
            going,
            phase=Phase.PROMOTED,
            held=False,
            message=(
                f"promoted: version {alias.additional_version} takes "
                f"{canary.steps[state.step]}% after {len(canary.steps)} healthy step(s) "
                f"({healthy})"
            ),
        )
        return CanaryDecision(promoted, Action.PROMOTED, routing_of(alias, promoted))
    step = state.step + 1
    stepped = CanaryState(
        alias.name,
        state.fingerprint,
        Phase.PROGRESSING,
        step,
        now,
        Outcomes(),
        f"version {alias.additional_version} takes {canary.steps[step]}% "
        f"(step {step + 1} of {len(canary.steps)}) after a healthy step ({healthy})",
    )
    return CanaryDecision(stepped, Action.STEPPED, routing_of(alias, stepped))


def _healthy(canary: Canary, figures: Outcomes) -> str:
    text = f"error rate {_percent(figures.error_rate)} in {figures.requests} requests"
    p99 = figures.quantile(0.99)
    if canary.max_p99_seconds is not None and p99 is not None:
        text += f", p99 {_ms(p99)}"
    return text


# ---------------------------------------------------------------------------------------
# The status entry (status.canaries[i]), and resuming from it after a change of leader
# ---------------------------------------------------------------------------------------


def status_entry(alias: Alias, state: CanaryState, transitioned: str) -> dict[str, Any]:
    """``status.canaries[i]``: the phase, the sentence, and the figures behind them."""
    assert alias.canary is not None
    entry: dict[str, Any] = {
        "name": alias.name,
        "phase": str(state.phase),
        "message": state.message,
        "version": alias.version,
        "additionalVersion": alias.additional_version,
        "weight": routing_of(alias, state).additional_weight,
        "step": state.step + 1,
        "requests": state.figures.requests,
        "errorRate": round(state.figures.error_rate, 4),
        "fingerprint": state.fingerprint,
        "lastTransitionTime": transitioned,
    }
    p99 = state.figures.quantile(0.99)
    if p99 is not None:
        entry["p99Seconds"] = round(p99, 4)
    return entry


def resume(alias: Alias, entry: Any, now: float) -> CanaryState | None:
    """The state a new leader carries on from: the entry's phase and step when it was
    written for this alias's spec as it is (else None: start afresh). The step's interval
    and figures start again: the old leader's figures went with it."""
    if not isinstance(entry, dict) or alias.canary is None:
        return None
    if entry.get("fingerprint") != fingerprint(alias):
        return None
    try:
        phase = Phase(str(entry.get("phase")))
    except ValueError:
        return None
    step = entry.get("step")
    if not isinstance(step, int) or not 1 <= step <= len(alias.canary.steps):
        return None
    return CanaryState(
        alias.name,
        fingerprint(alias),
        phase,
        step - 1,
        now,
        Outcomes(),
        str(entry.get("message") or ""),
    )
