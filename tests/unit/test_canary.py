"""The canary's decision on a simulated clock: it promotes through its steps, holds while
too few requests come, rolls back on the error rate or on p99 with the figures in its
sentence, and starts again when the alias's spec changes."""

from __future__ import annotations

from typing import Any

from hanshu_api.stats_report import Outcomes
from hanshu_api.versions import Alias, parse_aliases, pick_version
from hanshu_autoscaler.canary import (
    Action,
    CanaryState,
    Phase,
    decide_canary,
    resume,
    routing_of,
    status_entry,
)


def alias(**canary: Any) -> Alias:
    raw = {
        "name": "live",
        "version": 1,
        "additionalVersion": 2,
        "canary": {"steps": [10, 50, 100], "interval": "10s", "minRequests": 20, **canary},
    }
    problems: list[str] = []
    (parsed,) = parse_aliases([raw], problems)
    assert problems == []
    return parsed


def good(n: int, seconds: float = 0.02) -> Outcomes:
    return Outcomes.of([(seconds, False)] * n)


def failing(n: int, every: int) -> Outcomes:
    """n requests, one in ``every`` failed."""
    return Outcomes.of([(0.02, i % every == 0) for i in range(n)])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0


def run(live: Alias, windows: list[Outcomes], clock: Clock, state: CanaryState | None = None):
    """Look once per window, a second apart; the decisions."""
    decisions = []
    for window in windows:
        decision = decide_canary(state, live, window, clock.now)
        state = decision.state
        decisions.append(decision)
        clock.now += 1.0
    return decisions


def test_a_healthy_canary_promotes_through_its_steps():
    live, clock = alias(), Clock()
    decisions = run(live, [Outcomes()] + [good(5)] * 40, clock)
    actions = [d.action for d in decisions if d.action is not Action.UNCHANGED]
    assert actions == [Action.STARTED, Action.STEPPED, Action.STEPPED, Action.PROMOTED]
    weights = [d.routing.additional_weight for d in decisions if d.action is not Action.UNCHANGED]
    assert weights == [10, 50, 100, 100]
    final = decisions[-1]
    assert final.state.phase is Phase.PROMOTED
    assert "promoted: version 2 takes 100% after 3 healthy step(s)" in final.message
    # Promoted at 100: every request goes to the new version.
    assert {pick_version(final.routing, d / 10) for d in range(10)} == {2}
    # Each step lasted its interval (10 looks a second apart), no less.
    steps = [i for i, d in enumerate(decisions) if d.action is Action.STEPPED]
    assert steps[1] - steps[0] == 10


def test_too_few_requests_hold_the_step_until_there_are_enough():
    live, clock = alias(), Clock()
    decisions = run(live, [Outcomes()] + [good(1)] * 12, clock)
    held = [d for d in decisions if d.action is Action.HELD]
    assert len(held) == 1  # said once, not every look
    assert "holding version 2 at 10%: 10 of the 20 requests needed to judge it" in (held[0].message)
    assert decisions[-1].routing.additional_weight == 10
    assert decisions[-1].state.phase is Phase.PROGRESSING
    # The figures keep adding up: the step moves on once there are 20.
    assert decisions[-1].state.figures.requests == 12
    more = run(live, [good(1)] * 8, clock, decisions[-1].state)
    assert [d.action for d in more][-2:] == [Action.UNCHANGED, Action.STEPPED]
    assert more[-1].routing.additional_weight == 50


def test_an_error_rate_over_the_limit_rolls_back_at_once_with_the_figures():
    live, clock = alias(maxErrorRate=5), Clock()
    decisions = run(live, [Outcomes(), good(10), failing(50, every=5)], clock)
    last = decisions[-1]
    assert last.action is Action.ROLLED_BACK
    assert last.state.phase is Phase.ROLLED_BACK
    # All traffic back on version 1, within the step (not at its end).
    assert last.routing.additional_weight == 0
    assert {pick_version(last.routing, d / 10) for d in range(10)} == {1}
    assert "error rate 16.7% over 5.0% in the last 60 requests (10 failed)" in last.message
    assert "rolled back to version 1 at 10% on version 2" in last.message
    # It stays rolled back, whatever comes next.
    after = run(live, [good(100)] * 30, clock, last.state)
    assert {d.action for d in after} == {Action.UNCHANGED}
    assert after[-1].routing.additional_weight == 0


def test_errors_under_the_limit_or_too_few_to_judge_do_not_roll_back():
    live, clock = alias(maxErrorRate=5), Clock()
    # 1 in 25 failing is 4%: under 5%.
    decisions = run(live, [Outcomes(), failing(50, every=25)], clock)
    assert decisions[-1].state.phase is Phase.PROGRESSING
    # 3 failures of 3 requests: too few to judge.
    decisions = run(live, [Outcomes(), Outcomes.of([(0.01, True)] * 3)], clock)
    assert decisions[-1].state.phase is Phase.PROGRESSING


def test_a_p99_over_the_limit_rolls_back_naming_it():
    live, clock = alias(maxP99Latency="300ms"), Clock()
    slow = Outcomes.of([(0.02, False)] * 90 + [(0.9, False)] * 10)
    decisions = run(live, [Outcomes(), slow], clock)
    last = decisions[-1]
    assert last.action is Action.ROLLED_BACK
    assert "p99 latency" in last.message
    assert "over 300 ms in the last 100 requests" in last.message
    # Fast enough: it goes on.
    decisions = run(live, [Outcomes(), good(100, seconds=0.2)], clock)
    assert decisions[-1].state.phase is Phase.PROGRESSING


def test_a_spec_change_starts_the_canary_again():
    live, clock = alias(), Clock()
    rolled = run(live, [Outcomes(), failing(40, every=2)], clock)[-1].state
    assert rolled.phase is Phase.ROLLED_BACK
    fixed = alias(steps=[20, 100])  # the same versions, new steps
    again = decide_canary(rolled, fixed, Outcomes(), clock.now)
    assert again.action is Action.STARTED
    assert again.state.phase is Phase.PROGRESSING
    assert again.routing.additional_weight == 20
    problems: list[str] = []
    (v3,) = parse_aliases(
        [{"name": "live", "version": 1, "additionalVersion": 3, "canary": {"steps": [10]}}],
        problems,
    )
    assert decide_canary(again.state, v3, Outcomes(), clock.now).action is Action.STARTED


def test_a_new_leader_carries_on_from_the_status_entry():
    live, clock = alias(), Clock()
    decisions = run(live, [Outcomes()] + [good(5)] * 12, clock)
    state = decisions[-1].state
    assert state.step == 1
    entry = status_entry(live, state, "2026-12-06T00:00:00Z")
    assert (entry["phase"], entry["step"], entry["weight"]) == ("Progressing", 2, 50)
    resumed = resume(live, entry, clock.now)
    assert resumed is not None
    assert (resumed.phase, resumed.step) == (Phase.PROGRESSING, 1)
    assert routing_of(live, resumed).additional_weight == 50
    # An entry written for another spec of the alias is not carried on.
    assert resume(alias(steps=[5, 100]), entry, clock.now) is None
    assert resume(live, {"name": "live", "phase": "Bogus", "step": 1}, clock.now) is None
