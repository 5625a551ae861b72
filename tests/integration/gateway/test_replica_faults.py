"""A Function whose replicas cannot start: its callers learn it in seconds, not after the
cold-start timeout. The cluster gateway in this process against kmock, reading the fault from
the Function's status (as the operator writes it), forwarding to a real runtime once fixed."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from hanshu_api import API_VERSION, FUNCTION_PLURAL
from hanshu_api.kube import KubeClient, path_for

from tests.support.helpers import eventually
from tests.support.kube_gateway import (
    CODE,
    NS,
    create,
    endpoint_slice,
    fetch,
    function,
    kube_client,
    running_gateway,
    status_is,
    trigger,
)

# Far longer than any wait below: a 503 in under two seconds is the fault, not the timeout.
COLD_START_TIMEOUT = "30"


def deployment_ready(status: str, reason: str, message: str) -> dict[str, Any]:
    """A Function's status as the operator writes it (metav1.Condition shape)."""
    stamp = "2025-01-01T00:00:00Z"
    conditions = [
        {"type": "Ready", "status": status, "reason": reason, "message": message},
        {"type": "DeploymentReady", "status": status, "reason": reason, "message": message},
    ]
    return {
        "status": {
            "observedGeneration": 1,
            "conditions": [{**c, "lastTransitionTime": stamp} for c in conditions],
        }
    }


async def set_status(kube: KubeClient, name: str, status: dict[str, Any]) -> None:
    await kube.merge_patch(path_for(API_VERSION, FUNCTION_PLURAL, NS, name, "status"), status)


async def call(url: str) -> tuple[int, dict[str, str], bytes, float]:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http, http.get(url) as reply:
        body = await reply.read()
        return reply.status, dict(reply.headers), body, time.monotonic() - started


async def queued(internal: str, name: str) -> int:
    _, page = await fetch(f"{internal}/functions")
    return next((f["queued"] for f in json.loads(page) if f["name"] == name), 0)


IMAGE_FAULT = deployment_ready(
    "False",
    "ImagePullFailed",
    'the image "registry.internal/team/fn:nope" cannot be pulled (ErrImagePull: not found)',
)


async def test_a_cold_request_is_refused_with_the_reason_at_once(kmock: Any, tmp_path: Path):
    async with kube_client(kmock, tmp_path) as (kube, kubeconfig):
        await create(kube, function("broken"))
        await create(kube, trigger("broken", "broken", path="/broken"))
        await set_status(kube, "broken", IMAGE_FAULT)
        async with running_gateway(
            kubeconfig, HANSHU_WATCH_NAMESPACES=NS, HANSHU_COLD_START_TIMEOUT=COLD_START_TIMEOUT
        ) as (url, internal):
            await eventually(lambda: status_is(f"{internal}/readyz", 200), message="synced")
            status, headers, body, took = await call(f"{url}/broken")
    assert status == 503
    assert took < 2.0
    error = json.loads(body)
    assert error["errorType"] == "ImagePullFailed"
    assert error["errorMessage"].startswith("'broken' cannot start a replica: its image")
    # The caller is told the kind of trouble; the image and registry are the owner's.
    assert "registry.internal" not in error["errorMessage"]
    assert headers["Retry-After"] == "10"


async def test_waiting_requests_are_released_when_the_fault_appears_and_a_fix_wakes_it(
    kmock: Any, tmp_path: Path, runtime_factory: Any
):
    runtime = runtime_factory(CODE, "handlers.echo")
    async with kube_client(kmock, tmp_path) as (kube, kubeconfig):
        await create(kube, function("echo"))
        await create(kube, trigger("echo", "echo", path="/echo"))
        await set_status(kube, "echo", deployment_ready("Unknown", "Starting", "0 of 1 ready"))
        async with running_gateway(
            kubeconfig, HANSHU_WATCH_NAMESPACES=NS, HANSHU_COLD_START_TIMEOUT=COLD_START_TIMEOUT
        ) as (url, internal):
            await eventually(lambda: status_is(f"{internal}/readyz", 200), message="synced")
            # Cold and starting: the request waits for a replica, as any cold request does.
            waiting = asyncio.create_task(call(f"{url}/echo/a"))
            await eventually(lambda: _equals(queued(internal, "echo"), 1), message="queued")

            # The scheduler finds no node: the waiting request hears it within seconds.
            unschedulable = deployment_ready(
                "False", "Unschedulable", "no node can run a replica: 0/1 nodes are available"
            )
            faulted = time.monotonic()
            await set_status(kube, "echo", unschedulable)
            status, headers, body, _ = await asyncio.wait_for(waiting, timeout=10)
            assert time.monotonic() - faulted < 2.0
            assert status == 503
            assert json.loads(body)["errorType"] == "Unschedulable"
            assert "Retry-After" in headers

            # A node is added: the status says Starting again, and the next request waits
            # and is served by the replica that comes up, as from any cold start.
            await set_status(kube, "echo", deployment_ready("Unknown", "Starting", "0 of 1"))
            held = await _held_request(f"{url}/echo/b", internal)
            await create(kube, endpoint_slice(runtime.port, True))
            status, headers, _, _ = await asyncio.wait_for(held, timeout=10)
            assert status == 200
            assert headers.get("X-Hanshu-Cold-Start") == "true"


async def _equals(value: Any, expected: Any) -> bool:
    return (await value) == expected


async def _held_request(
    url: str, internal: str
) -> asyncio.Task[tuple[int, dict[str, str], bytes, float]]:
    """A request the gateway holds in its cold queue; until the gateway has seen the fault
    clear, requests are refused at once, and another is sent."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        request = asyncio.create_task(call(url))
        while not request.done():
            if await queued(internal, "echo") >= 1:
                return request
            await asyncio.sleep(0.02)
        status, _, body, _ = request.result()
        assert (status, json.loads(body)["errorType"]) == (503, "Unschedulable")
    raise AssertionError("the gateway kept refusing after the fault cleared")
