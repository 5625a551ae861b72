"""Route ownership across namespaces: the oldest Trigger owns a route, the others say
RouteConflict and take over when it goes. The operator under kopf, against kmock."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from typing import Any

from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL
from hanshu_api.kube import path_for
from kopf.testing import KopfRunner

from tests.support.helpers import eventually
from tests.support.operator_cluster import Cluster
from tests.support.operator_objects import TRG, hello

TEAM_A, TEAM_B = "ns1", "ns2"
ROUTE = {"host": "api.example.com", "path": "/v1"}


@contextlib.asynccontextmanager
async def operator_watching(cluster: Cluster, *flags: str) -> AsyncIterator[Cluster]:
    """The operator as ``kopf run`` runs it, watching what ``flags`` say (the chart's
    ``watchNamespaces`` or the whole cluster), in its own thread and loop."""
    runner = KopfRunner(
        ["run", "--standalone", *flags, "-m", "hanshu_operator.handlers"], timeout=30
    )
    await asyncio.to_thread(runner.__enter__)
    try:
        yield cluster
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)
    assert runner.exception is None, runner.output


def http_trigger(namespace: str, name: str, created: str, **http: Any) -> dict[str, Any]:
    # kmock sets no creationTimestamp; a real API server always does.
    return {
        "apiVersion": API_VERSION,
        "kind": "Trigger",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": {"functionRef": {"name": "hello"}, "http": {**ROUTE, **http}},
    }


def function_in(namespace: str) -> dict[str, Any]:
    body = copy.deepcopy(hello())
    body["metadata"]["namespace"] = namespace
    return body


def condition(cluster: Cluster, namespace: str, name: str, kind: str) -> dict[str, Any] | None:
    status = cluster.object(TRG, name, namespace).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), None)


def served(cluster: Cluster, namespace: str, name: str, status: str, reason: str):
    def probe() -> dict[str, Any] | None:
        found = condition(cluster, namespace, name, "Served")
        return found if found and (found["status"], found["reason"]) == (status, reason) else None

    return probe


async def delete_trigger(cluster: Cluster, namespace: str, name: str) -> None:
    await cluster.kube.delete(path_for(API_VERSION, TRIGGER_PLURAL, namespace, name))


async def two_teams_claim_one_route(cluster: Cluster) -> None:
    for namespace in (TEAM_A, TEAM_B):
        await cluster.create(API_VERSION, FUNCTION_PLURAL, function_in(namespace))
    await cluster.create(
        API_VERSION, TRIGGER_PLURAL, http_trigger(TEAM_A, "api", "2026-01-01T00:00:00Z")
    )
    await eventually(served(cluster, TEAM_A, "api", "True", "Routed"), message="A routed")
    # Team B's Trigger is newer, whatever its name sorts as.
    await cluster.create(
        API_VERSION, TRIGGER_PLURAL, http_trigger(TEAM_B, "aaa-takeover", "2026-02-01T00:00:00Z")
    )


async def test_the_oldest_trigger_owns_a_route_across_namespaces(cluster: Cluster):
    async with operator_watching(cluster, "--namespace", TEAM_A, "--namespace", TEAM_B):
        await two_teams_claim_one_route(cluster)
        lost = await eventually(
            served(cluster, TEAM_B, "aaa-takeover", "False", "RouteConflict"),
            message="the newer Trigger reports the conflict",
        )
        assert "api.example.com/v1" in lost["message"]
        assert "already belongs to Trigger ns1/api" in lost["message"]
        ready = condition(cluster, TEAM_B, "aaa-takeover", "Ready")
        assert ready is not None
        assert (ready["status"], ready["reason"]) == ("False", "RouteConflict")
        # The owner is untouched.
        owner = condition(cluster, TEAM_A, "api", "Ready")
        assert owner is not None
        assert owner["status"] == "True"
        warnings = await eventually(
            lambda: cluster.events("RouteConflict"), message="a RouteConflict Event"
        )
        assert warnings[0]["type"] == "Warning"
        assert warnings[0]["involvedObject"]["namespace"] == TEAM_B
        assert warnings[0]["involvedObject"]["name"] == "aaa-takeover"
        assert "ns1/api" in warnings[0]["message"]

        await delete_trigger(cluster, TEAM_A, "api")
        took_over = await eventually(
            served(cluster, TEAM_B, "aaa-takeover", "True", "Routed"),
            message="the next Trigger takes the route over",
        )
        assert "http://api.example.com/v1" in took_over["message"]
        ready = condition(cluster, TEAM_B, "aaa-takeover", "Ready")
        assert ready is not None
        assert ready["status"] == "True"
    # One Event for the one change, however often the reconcile ran.
    assert len(cluster.events("RouteConflict")) == 1


async def test_an_owner_that_moves_its_route_hands_it_over(cluster: Cluster):
    async with operator_watching(cluster, "--all-namespaces"):
        await two_teams_claim_one_route(cluster)
        await eventually(served(cluster, TEAM_B, "aaa-takeover", "False", "RouteConflict"))

        await cluster.kube.merge_patch(
            path_for(API_VERSION, TRIGGER_PLURAL, TEAM_A, "api"),
            {"spec": {"http": {"path": "/v2"}}},
        )
        await eventually(
            served(cluster, TEAM_B, "aaa-takeover", "True", "Routed"),
            message="the route the owner left goes to the next claimant",
        )
        await eventually(served(cluster, TEAM_A, "api", "True", "Routed"))

        # The older Trigger moves back: it owns the route again, and the newer one says so.
        await cluster.kube.merge_patch(
            path_for(API_VERSION, TRIGGER_PLURAL, TEAM_A, "api"),
            {"spec": {"http": {"path": "/v1/"}}},  # the same route: a trailing slash
        )
        await eventually(
            served(cluster, TEAM_B, "aaa-takeover", "False", "RouteConflict"),
            message="the older Trigger takes its route back",
        )
        await eventually(served(cluster, TEAM_A, "api", "True", "Routed"))
        await eventually(
            lambda: len(cluster.events("RouteConflict")) == 2,
            message="a second RouteConflict Event for the second change",
        )


async def test_triggers_on_other_methods_share_a_route(cluster: Cluster):
    async with operator_watching(cluster, "--namespace", TEAM_A, "--namespace", TEAM_B):
        for namespace in (TEAM_A, TEAM_B):
            await cluster.create(API_VERSION, FUNCTION_PLURAL, function_in(namespace))
        await cluster.create(
            API_VERSION,
            TRIGGER_PLURAL,
            http_trigger(TEAM_A, "reads", "2026-01-01T00:00:00Z", methods=["GET"]),
        )
        await cluster.create(
            API_VERSION,
            TRIGGER_PLURAL,
            http_trigger(TEAM_B, "writes", "2026-02-01T00:00:00Z", methods=["POST"]),
        )
        await eventually(served(cluster, TEAM_A, "reads", "True", "Routed"))
        await eventually(served(cluster, TEAM_B, "writes", "True", "Routed"))
    assert cluster.events("RouteConflict") == []
