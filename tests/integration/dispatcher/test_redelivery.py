"""Redelivery never reruns finished work: on a real nats-server, real dispatcher processes
and real runtime replicas, each run counted as the handler saw it."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import aiohttp
import nats
from hanshu_api.invocations import (
    H_MSG_ID,
    InvocationHeaders,
    Origin,
    StoredPolicy,
    StoredRequest,
    subject_for,
)
from hanshu_api.models import AsyncPolicy

from tests.support.async_platform import async_function, final_status
from tests.support.dev_platform import trigger
from tests.support.helpers import eventually

ASYNC = {"X-Hanshu-Invocation-Type": "Async"}


async def _call_async(http: aiohttp.ClientSession, url: str, body: Any) -> str:
    async with http.post(url, json=body, headers=ASYNC) as reply:
        assert reply.status == 202, await reply.text()
        return reply.headers["X-Hanshu-Invocation-Id"]


async def _metric(platform: Any, name: str) -> float:
    """A counter summed over the dispatchers still running."""
    total = 0.0
    async with aiohttp.ClientSession() as session:
        for process, port in zip(platform.dispatchers, platform.dispatcher_ports, strict=True):
            if process.poll() is not None:
                continue
            async with session.get(f"http://127.0.0.1:{port}/metrics") as reply:
                for line in (await reply.text()).splitlines():
                    if line.startswith(name):
                        total += float(line.rsplit(" ", 1)[1])
    return total


def _starts(platform: Any) -> Counter[str]:
    return Counter(run["id"] for run in platform.runs() if run["what"] == "start")


async def test_a_second_delivery_of_a_finished_invocation_is_acknowledged_unrun(
    async_platform, http
):
    platform = async_platform([async_function("once"), trigger("once", "once", path="/once")])
    invocation_id = await _call_async(http, f"{platform.url}/once", {"n": 1})
    first = await final_status(platform, invocation_id)
    assert (first["state"], first["attempts"]) == ("Succeeded", 1)

    # The same invocation stored again, as JetStream redelivers a message whose ack was
    # lost (a new message id only gets it past the stream's de-duplication window).
    client = await nats.connect(platform.nats.url)
    try:
        headers = InvocationHeaders(
            invocation_id,
            "Async",
            time.time(),
            StoredPolicy.of(AsyncPolicy(), 30),
            StoredRequest("POST", "/once", (("Content-Type", "application/json"),)),
            Origin("default", "once", "once"),
        ).to_headers()
        headers[H_MSG_ID] = f"{invocation_id}-again"
        await client.jetstream().publish(
            subject_for(("default", "once")), b'{"n": 1}', headers=headers
        )
    finally:
        await client.close()

    skipped = "hanshu_dispatcher_redeliveries_skipped_total"
    await eventually(lambda: _metric(platform, skipped), message="the redelivery skipped")
    assert _starts(platform) == {invocation_id: 1}
    again = await final_status(platform, invocation_id)
    assert (again["state"], again["attempts"], again["finishedAt"]) == (
        "Succeeded",
        1,
        first["finishedAt"],
    )


async def test_a_nats_restart_mid_run_loses_nothing_and_reruns_nothing(async_platform, http):
    platform = async_platform(
        [
            async_function("steady", concurrency=50, scaling={"maxReplicas": 1}),
            trigger("steady", "steady", path="/steady"),
        ],
        dispatchers=2,
        HANSHU_DISPATCH_CONCURRENCY="8",
        # Longer than a restart takes on a loaded machine: what was running is never
        # handed out again before its outcome could land.
        HANSHU_ACK_WAIT_SECONDS="5",
    )
    ids = [
        await _call_async(http, f"{platform.url}/steady", {"n": n, "seconds": 0.3})
        for n in range(40)
    ]
    await eventually(lambda: len(_starts(platform)) >= 8, message="work under way")
    platform.nats.stop()
    platform.nats.start()  # same port, same storage: the clients reconnect on their own
    restarted = time.monotonic()

    states = [(await final_status(platform, i, timeout=30))["state"] for i in ids]
    assert states == ["Succeeded"] * len(ids)
    assert time.monotonic() - restarted < 30
    starts = _starts(platform)
    assert set(starts) == set(ids)
    assert {i: n for i, n in starts.items() if n > 1} == {}  # none ran twice
