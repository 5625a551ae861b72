"""The canary controller's I/O around the pure decision, against a recording stand-in for
the API: what it writes to the status and when, the Events, a failed write that is decided
and told again, only the leader writing, and an alias that loses its canary."""

from __future__ import annotations

from typing import Any

import pytest
from hanshu_api.kube import ApiError
from hanshu_api.stats_report import Outcomes
from hanshu_autoscaler.canary_controller import CanaryController


class RecordingApi:
    """merge_patch of the status and create of Events, as KubeClient takes them."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.events: list[dict[str, Any]] = []
        self.fail_next = 0

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.fail_next:
            self.fail_next -= 1
            raise ApiError(500, "InternalError", "etcd is having a moment")
        self.patches.append((path, body))
        return function(status=body["status"])

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.events.append(body)
        return body


class Leadership:
    def __init__(self, leading: bool) -> None:
        self.leading = leading

    def is_leader(self) -> bool:
        return self.leading

    def leader_url(self) -> str | None:
        return None


def function(
    canary: dict[str, Any] | None = None, status: dict[str, Any] | None = None
) -> dict[str, Any]:
    alias: dict[str, Any] = {"name": "live", "version": 1}
    if canary is not None:
        alias.update(additionalVersion=2, canary=canary)
    return {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "shop", "namespace": "ns", "uid": "u-1"},
        "spec": {"handler": "index.handler", "aliases": [alias]},
        "status": status or {},
    }


CANARY = {"steps": [10, 100], "interval": "10s", "minRequests": 10, "maxErrorRate": 5}
V2 = ("ns", "shop-v2")


@pytest.fixture
def clock() -> list[float]:
    return [100.0]


def controller(api: RecordingApi, clock: list[float], leading: bool = True) -> CanaryController:
    return CanaryController(
        api,  # type: ignore[arg-type]
        clock=lambda: clock[0],
        leadership=Leadership(leading),  # type: ignore[arg-type]
    )


async def test_it_writes_on_transitions_only_and_warns_on_a_rollback(clock: list[float]):
    api = RecordingApi()
    canaries = controller(api, clock)
    canaries.on_function("ADDED", function(CANARY))
    await canaries.tick()
    ((path, started),) = api.patches
    assert path.endswith("/namespaces/ns/functions/shop/status")
    assert started["status"]["aliases"] == [
        {"name": "live", "version": 1, "additionalVersion": 2, "additionalWeight": 10}
    ]
    assert started["status"]["canaries"][0]["phase"] == "Progressing"
    assert [e["reason"] for e in api.events] == ["CanaryStarted"]
    # Healthy figures within the step: nothing to write.
    canaries.ingest(V2, Outcomes.of([(0.01, False)] * 5))
    await canaries.tick()
    assert len(api.patches) == 1
    # One in four failing, 13 requests in all: rolled back, a Warning with the figures.
    canaries.ingest(V2, Outcomes.of([(0.01, i % 4 == 0) for i in range(8)]))
    await canaries.tick()
    assert len(api.patches) == 2
    rolled = api.patches[-1][1]["status"]
    assert rolled["aliases"] == [{"name": "live", "version": 1}]
    assert rolled["canaries"][0]["phase"] == "RolledBack"
    warning = api.events[-1]
    assert (warning["type"], warning["reason"]) == ("Warning", "CanaryRolledBack")
    assert "error rate 15.4% over 5.0% in the last 13 requests (2 failed)" in warning["message"]


async def test_a_failed_write_is_decided_and_told_again(clock: list[float]):
    api = RecordingApi()
    canaries = controller(api, clock)
    canaries.on_function("ADDED", function(CANARY))
    await canaries.tick()
    canaries.ingest(V2, Outcomes.of([(0.01, True)] * 10))
    api.fail_next = 1
    await canaries.tick()  # logged, not raised: the other Functions go on
    assert [e["reason"] for e in api.events] == ["CanaryStarted"]
    await canaries.tick()
    assert api.patches[-1][1]["status"]["canaries"][0]["phase"] == "RolledBack"
    assert api.events[-1]["reason"] == "CanaryRolledBack"
    assert "in the last 10 requests (10 failed)" in api.events[-1]["message"]


async def test_a_standby_writes_nothing(clock: list[float]):
    api = RecordingApi()
    canaries = controller(api, clock, leading=False)
    canaries.on_function("ADDED", function(CANARY))
    canaries.ingest(V2, Outcomes.of([(0.01, True)] * 50))
    await canaries.tick()
    assert api.patches == []
    assert api.events == []


async def test_an_alias_without_its_canary_has_its_entries_removed(clock: list[float]):
    api = RecordingApi()
    canaries = controller(api, clock)
    canaries.on_function("ADDED", function(CANARY))
    await canaries.tick()
    written = api.patches[-1][1]["status"]
    canaries.on_function("MODIFIED", function(None, status=written))
    await canaries.tick()
    assert api.patches[-1][1] == {"status": {"aliases": [], "canaries": []}}
    # Seen empty, it is forgotten: nothing more is written.
    canaries.on_function("MODIFIED", function(None, status={"aliases": [], "canaries": []}))
    await canaries.tick()
    assert len(api.patches) == 2
