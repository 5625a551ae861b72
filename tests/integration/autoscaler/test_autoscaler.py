"""The autoscaler as its own component, against kmock with no operator running: a cold
report wakes a Function from zero, idleness takes it back to zero, the reason lands in
the Function's status and an Event; two replicas elect one leader by a Lease, a standby
passes reports on to it, and takes over within a few seconds of the leader's death."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import kmock

from devtools.autoscaler_process import LEASE_NAME, AutoscalerProcess
from tests.support.autoscaler_cluster import DEPLOYMENTS, FN, LEASES, Cluster, cold_report, deploy
from tests.support.helpers import eventually

Start = Callable[..., AutoscalerProcess]


async def post(replica: AutoscalerProcess, body: dict[str, Any]) -> int:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{replica.url}/stats", json=body) as reply,
        ):
            return reply.status
    except aiohttp.ClientConnectionError:
        return 0  # still starting


def replicas(cluster: Cluster, name: str) -> int:
    return int(cluster.object(DEPLOYMENTS, name)["spec"]["replicas"])


def holder(cluster: Cluster) -> str:
    try:
        return str(cluster.object(LEASES, LEASE_NAME)["spec"]["holderIdentity"])
    except KeyError:
        return ""


def scale_writes(cluster: Cluster, name: str) -> list[Any]:
    return [
        request.data
        for request in cluster.emulator[kmock.resource(DEPLOYMENTS)]
        if request.method == "PATCH" and str(request.url.path).endswith(f"/{name}/scale")
    ]


async def test_with_no_operator_a_function_goes_from_zero_to_one_and_back(
    cluster: Cluster, autoscalers: Start
):
    await deploy(cluster, "hello", scaleToZeroGracePeriod="1s")
    only = autoscalers("autoscaler-a")
    await eventually(lambda: holder(cluster) == only.identity, message="the Lease")

    # A gateway reports a request waiting at a Function with no replica.
    await eventually(lambda: post(only, cold_report("hello")), message="a 2xx")
    await eventually(lambda: replicas(cluster, "hello") == 1, message="0 -> 1")
    assert scale_writes(cluster, "hello")[0] == {"spec": {"replicas": 1}}

    def last_scale() -> dict[str, Any] | None:
        return (cluster.object(FN, "hello").get("status") or {}).get("lastScale")

    woken = await eventually(last_scale, message="status.lastScale")
    assert (woken["replicas"], woken["reason"]) == (1, "ColdStart")
    assert "1 request(s) waiting" in woken["message"]
    await eventually(
        lambda: any("0 -> 1 replicas" in e["message"] for e in cluster.events("ColdStart")),
        message="the ColdStart Event",
    )

    # The gateway stops reporting it (served, nothing since): back to zero after the
    # grace and a stable window of stats.
    await eventually(lambda: replicas(cluster, "hello") == 0, timeout=20, message="1 -> 0")
    idle = await eventually(lambda: (last_scale() or {}).get("reason") == "Idle" and last_scale())
    assert idle["replicas"] == 0
    await eventually(
        lambda: any("1 -> 0 replicas" in e["message"] for e in cluster.events("Idle")),
        message="the Idle Event",  # posted after the status write
    )


async def test_a_standby_passes_reports_to_the_leader(cluster: Cluster, autoscalers: Start):
    await deploy(cluster, "hello")
    first, second = autoscalers("autoscaler-a"), autoscalers("autoscaler-b")
    leader = await eventually(lambda: holder(cluster), message="a leader")
    standby = second if leader == first.identity else first

    # The Service may send a report to either replica: the standby's reaches the leader.
    async def taken() -> bool:
        return await post(standby, cold_report("hello")) == 204

    await eventually(taken, message="the report taken through the standby")
    assert replicas(cluster, "hello") == 1
    assert holder(cluster) == leader  # the standby did not decide itself
    # Each says which it is (its liveness answer), for people looking at a pod.
    async with aiohttp.ClientSession() as http:
        for replica, role in (
            (standby, "standby"),
            (first if standby is second else second, "leader"),
        ):
            async with http.get(f"{replica.url}/healthz") as reply:
                health = await reply.json()
            assert (health["role"], health["leader"]) == (role, leader)


async def test_the_standby_takes_over_within_seconds_of_the_leaders_death(
    cluster: Cluster, autoscalers: Start
):
    await deploy(cluster, "hello")
    replicas_by_identity = {r.identity: r for r in (autoscalers("a"), autoscalers("b"))}
    leader = replicas_by_identity[await eventually(lambda: holder(cluster), message="a leader")]
    (standby,) = (r for r in replicas_by_identity.values() if r is not leader)
    # Both are up (the standby's intake answers) before the leader dies.
    await eventually(lambda: post(standby, {"gateway": "gw-0", "functions": []}))

    leader.kill()
    killed = time.monotonic()
    # Meanwhile a cold request waits; its gateway reports it every interval until taken.
    while await post(standby, cold_report("hello")) != 204:
        assert time.monotonic() - killed < 15, "no takeover within 15 s"
        await _pause()
    took = time.monotonic() - killed

    assert holder(cluster) == standby.identity
    assert replicas(cluster, "hello") == 1
    assert scale_writes(cluster, "hello") == [{"spec": {"replicas": 1}}]
    lease = cluster.object(LEASES, LEASE_NAME)["spec"]
    assert lease["leaseTransitions"] >= 1
    # The lease duration (4 s) after the leader's last renewal, a look every second, and
    # slack for a loaded machine.
    assert took < 10, f"the standby took {took:.1f}s to take over"


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.2)  # a gateway's next report (it reports every second)


def test_a_bad_setting_stops_the_autoscaler_with_one_line(tmp_path):
    finished = subprocess.run(
        [sys.executable, "-m", "hanshu_autoscaler"],
        env={
            **os.environ,
            "KUBECONFIG": str(tmp_path / "missing"),  # refused before any connection
            "HANSHU_LEASE_RENEW_SECONDS": "5",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode != 0
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr
    assert lines[0].startswith("hanshu-autoscaler: HANSHU_LEASE_RENEW_SECONDS ")


async def test_a_leader_stopped_cleanly_hands_over_at_the_standbys_next_look(
    cluster: Cluster, autoscalers: Start
):
    """A rollout or a drain (SIGTERM): the leader gives the Lease up, and the standby takes
    it within about a renew interval, not a lease duration."""
    await deploy(cluster, "hello")
    by_identity = {r.identity: r for r in (autoscalers("a"), autoscalers("b"))}
    leader = by_identity[await eventually(lambda: holder(cluster), message="a leader")]
    (standby,) = (r for r in by_identity.values() if r is not leader)
    await eventually(lambda: post(standby, {"gateway": "gw-0", "functions": []}))

    await asyncio.to_thread(leader.stop)
    stopped = time.monotonic()
    await eventually(lambda: holder(cluster) == standby.identity, message="the takeover")
    took = time.monotonic() - stopped
    assert took < 3, f"{took:.1f}s: the Lease was not given up"
