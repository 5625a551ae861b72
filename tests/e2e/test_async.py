"""Async invocation on a real cluster: the chart's NATS and dispatcher, a call through the
gateway answered 202, run from zero replicas, and its status URL ending Succeeded."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from tests.support.real_cluster import ROOT, Cluster, wait_for

pytestmark = pytest.mark.e2e
EXAMPLES = ROOT / "examples"
FINAL_STATES = {"Succeeded", "Failed", "Expired"}


def request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    sent = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(sent, timeout=60) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _async_components_ready(cluster: Cluster) -> bool:
    ready = cluster.run(
        "get",
        "deploy,statefulset",
        "-l",
        "app.kubernetes.io/part-of=hanshu",
        "-o",
        "json",
        namespace=cluster.system,
    )
    workloads = {
        item["metadata"]["labels"].get("app.kubernetes.io/component"): item
        for item in json.loads(ready.stdout)["items"]
    }
    if "dispatcher" not in workloads:
        pytest.skip(
            f"the installation in {cluster.system} has no dispatcher (nats.enabled=false and "
            "no nats.url): async invocation is off there"
        )
    # The bundled NATS is a StatefulSet here; an existing one (nats.url) lives elsewhere.
    return all(
        (item.get("status") or {}).get("readyReplicas", 0) >= 1
        for component, item in workloads.items()
        if component in ("dispatcher", "nats", "gateway")
    )


def test_async_call_is_accepted_and_ends_succeeded(cluster: Cluster, gateway_url: str):
    wait_for(lambda: _async_components_ready(cluster), 300, "NATS, dispatcher and gateway ready")
    cluster.apply(EXAMPLES / "hello" / "function.yaml")
    cluster.apply(EXAMPLES / "hello" / "trigger.yaml")
    wait_for(
        lambda: (cluster.condition("trg", "hello") or {}).get("status") == "True",
        180,
        "the hello Trigger Ready",
    )
    name = f"async-{uuid.uuid4().hex[:6]}"
    # The gateway's route table follows the Trigger within moments (until then 404), and
    # it may still be connecting to NATS (503 AsyncUnavailable, never a 202 for an event it
    # did not store): both are worth another try.
    accepted: list[Any] = []

    def call() -> bool:
        status, headers, body = request(
            f"{gateway_url}/hello?name={name}",
            "POST",
            {"X-Hanshu-Invocation-Type": "Async", "Content-Type": "application/json"},
            b"{}",
        )
        accepted[:] = [status, headers, body]
        return status not in (404, 503)

    wait_for(call, 120, "the gateway takes an async call for /hello", interval=2)
    status, headers, body = accepted
    assert status == 202, body
    invocation_id = headers["X-Hanshu-Invocation-Id"]
    location = headers["Location"]
    assert location.endswith(invocation_id)
    assert json.loads(body)["invocationId"] == invocation_id

    def final() -> dict[str, Any] | None:
        status, _, body = request(f"{gateway_url}{location}")
        assert status == 200, body
        record = json.loads(body)
        return record if record["state"] in FINAL_STATES else None

    started = time.monotonic()
    record = wait_for(final, 240, f"invocation {invocation_id} finished", interval=2)
    assert record["state"] == "Succeeded", record
    assert record["invocationId"] == invocation_id
    assert record["attempts"] >= 1
    assert record["result"]["statusCode"] == 200
    assert record["result"]["body"] == f"Hello, {name}!\n"
    print(f"async call done {time.monotonic() - started:.1f}s after its 202", record["attempts"])
