"""The autoscaler's decisions on a simulated clock (one tick per second)."""

from __future__ import annotations

from collections.abc import Callable

from hanshu_api.models import Scaling
from hanshu_autoscaler.decisions import Decision, Observation, Policy, ScalerState, decide, observe

POLICY = Policy(stable_window=60, panic_window=6, panic_threshold=2.0)


class Simulation:
    """Feeds ticks to the autoscaler and applies its decisions, like the real loop."""

    def __init__(self, scaling: Scaling, replicas: int = 0, start: float = 1000.0) -> None:
        self.scaling = scaling
        self.replicas = replicas
        self.now = start
        self.state = ScalerState(started_at=start)
        self.history: list[tuple[float, Decision]] = []

    def tick(
        self, concurrency: float, *, queued: int = 0, idle_for: float | None = None
    ) -> Decision:
        self.now += 1
        observation = Observation(concurrency, queued, idle_for)
        observe(self.state, observation, self.now, POLICY)
        decision = decide(self.state, observation, self.replicas, self.scaling, self.now, POLICY)
        if decision.changes(self.replicas):
            self.history.append((self.now, decision))
        self.replicas = decision.replicas
        return decision

    def run(self, seconds: int, load: Callable[[int], float], **kwargs: float) -> None:
        for second in range(seconds):
            self.tick(load(second), **kwargs)  # type: ignore[arg-type]


def warm(scaling: Scaling, replicas: int, concurrency: float) -> Simulation:
    sim = Simulation(scaling, replicas)
    sim.run(61, lambda _: concurrency)
    sim.history.clear()
    return sim


def test_cold_request_wakes_the_function_at_once():
    sim = Simulation(Scaling(target_concurrency=10))
    decision = sim.tick(1, queued=1)
    assert (decision.replicas, decision.reason) == (1, "ColdStart")
    assert Simulation(Scaling(target_concurrency=10)).tick(35, queued=35).replicas == 4


def test_burst_scales_up_at_once_and_never_down_while_panicking():
    sim = warm(Scaling(target_concurrency=10, max_replicas=50), replicas=1, concurrency=5)
    decision = sim.tick(100)  # a flash sale: 100 in flight
    assert decision.reason == "Burst"
    assert sim.replicas >= 2  # the panic window holds one 100 among five 5s
    for _ in range(5):
        sim.tick(100)
    assert sim.replicas == 10
    peak = sim.replicas
    sim.run(30, lambda _: 20)  # the burst ebbs, still panicking: no scale-down
    assert sim.replicas == peak
    sim.run(120, lambda _: 20)  # panic over: down to the load, gradually
    assert sim.replicas == 2
    downs = [d.replicas for _, d in sim.history if d.replicas < peak]
    assert len(downs) > 1, "leaving panic undid the scale-up in one jump"


def test_steady_noisy_load_does_not_flap():
    sim = warm(Scaling(target_concurrency=10), replicas=3, concurrency=25)
    noise = [22, 28, 25, 30, 20, 27, 23, 26]
    sim.run(300, lambda s: noise[s % len(noise)])
    assert sim.replicas == 3
    assert sim.history == []


def test_load_that_ends_reaches_zero_after_exactly_the_grace_period():
    scaling = Scaling(target_concurrency=10, scale_to_zero_grace_seconds=30)
    sim = warm(scaling, replicas=1, concurrency=4)
    ended = sim.now  # the last response completes now; afterwards nothing is in flight
    for _ in range(29):
        decision = sim.tick(0, idle_for=sim.now + 1 - ended)
        assert sim.replicas == 1, decision
    decision = sim.tick(0, idle_for=sim.now + 1 - ended)
    assert sim.now - ended == 30
    assert (decision.replicas, decision.reason) == (0, "Idle")


def test_a_long_request_keeps_the_function_alive():
    sim = warm(Scaling(target_concurrency=10, scale_to_zero_grace_seconds=30), 1, 1)
    sim.run(600, lambda _: 1)  # one request in flight for ten minutes
    assert sim.replicas == 1


def test_no_scale_to_zero_before_a_full_window_after_a_restart():
    scaling = Scaling(target_concurrency=10, scale_to_zero_grace_seconds=10)
    sim = Simulation(scaling, replicas=3)  # the operator restarts; 3 replicas are running
    for _ in range(59):
        sim.tick(0)
        assert sim.replicas >= 1
    sim.tick(0)
    assert (sim.replicas, sim.history[-1][1].reason) == (0, "Idle")


def test_scale_down_waits_for_the_delay():
    scaling = Scaling(target_concurrency=10, scale_down_delay_seconds=30)
    sim = warm(scaling, replicas=4, concurrency=40)
    sim.run(60, lambda _: 10)  # the stable average falls to 10 over a minute
    first_down = sim.history[0][0]
    assert first_down - (sim.now - 60) > 30


def test_replicas_stay_within_min_and_max():
    sim = warm(Scaling(target_concurrency=10, min_replicas=2, max_replicas=5), 2, 0)
    assert sim.replicas == 2
    sim.run(10, lambda _: 500)
    assert sim.replicas == 5
    assert sim.history[-1][1].reason == "MaxReplicas"
