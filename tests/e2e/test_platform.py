"""The user's journey on a real cluster: install, apply, call from zero, back to zero,
faults in the status, API keys, cleanup of children."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.real_cluster import ROOT, Cluster, wait_for

pytestmark = pytest.mark.e2e
EXAMPLES = ROOT / "examples"


def call(
    url: str, headers: dict[str, str] | None = None, timeout: float = 120
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.parametrize(
    "example", sorted(p.relative_to(EXAMPLES) for p in EXAMPLES.rglob("*.yaml")), ids=str
)
def test_each_example_applies_and_becomes_ready(cluster: Cluster, example: Path):
    cluster.apply(EXAMPLES / example)
    applied = cluster.run(
        "get", "-f", str(EXAMPLES / example), "-o", "name", namespace=cluster.apps
    ).stdout.split()
    for name in applied:
        kind, _, short = name.partition("/")
        if kind.split(".", 1)[0] in ("function", "functions", "trigger", "triggers"):
            wait_for(
                lambda k=kind, n=short: (cluster.condition(k, n) or {}).get("status") == "True",
                180,
                f"{name} Ready",
            )


def test_first_request_from_zero_then_back_to_zero(cluster: Cluster, gateway_url: str):
    cluster.apply(EXAMPLES / "hello" / "function.yaml")
    cluster.apply(EXAMPLES / "hello" / "trigger.yaml")
    wait_for(
        lambda: (cluster.condition("fn", "hello") or {}).get("status") == "True", 180, "hello Ready"
    )
    wait_for(
        lambda: (cluster.get("deploy", "hello") or {}).get("spec", {}).get("replicas") == 0,
        180,
        "hello at zero replicas",
    )
    status, headers, body = call(f"{gateway_url}/hello?name=e2e")
    assert status == 200, body
    assert body == b"Hello, e2e!\n"
    assert headers.get("X-Hanshu-Cold-Start") == "true"
    last_scale = (cluster.get("fn", "hello") or {}).get("status", {}).get("lastScale", {})
    assert last_scale.get("reason") == "ColdStart"
    # 30 s grace (examples/hello) after the 20 s stable window of the kind values.
    wait_for(
        lambda: (cluster.get("deploy", "hello") or {}).get("spec", {}).get("replicas") == 0,
        180,
        "hello back at zero replicas",
    )
    assert cluster.get("fn", "hello")["status"]["lastScale"]["reason"] == "Idle"


def test_broken_handler_shows_its_fault(cluster: Cluster):
    manifest = (EXAMPLES / "hello" / "function.yaml").read_text()
    broken = (
        manifest.replace("name: hello", "name: broken")
        .replace("handler: index.handler", "handler: index.missing")
        .replace("minReplicas: 0", "minReplicas: 1")
    )
    cluster.run("apply", "-f", "-", namespace=cluster.apps, stdin=broken)
    ready = wait_for(
        lambda: (
            (c := cluster.condition("fn", "broken"))
            and c["status"] == "False"
            and c["reason"] == "RuntimeStartupFailed"
            and c
        ),
        240,
        "Ready=False with the runtime's fault",
    )
    assert "Runtime.HandlerNotFound" in ready["message"]
    assert "missing" in ready["message"]


def test_api_key_route_refuses_a_call_without_the_key(cluster: Cluster, gateway_url: str):
    cluster.apply(EXAMPLES / "api-key" / "function.yaml")
    wait_for(
        lambda: (cluster.condition("trg", "partner-hello") or {}).get("status") == "True",
        180,
        "the keyed Trigger Ready",
    )
    status, _, _ = call(f"{gateway_url}/partner")
    assert status == 401
    status, _, _ = call(f"{gateway_url}/partner", {"X-API-Key": "wrong"})
    assert status == 403
    status, _, body = call(
        f"{gateway_url}/partner", {"X-API-Key": "change-me-to-a-long-random-string"}
    )
    assert status == 200, body


def test_deleting_a_function_removes_its_children(cluster: Cluster):
    manifest = (
        (EXAMPLES / "hello" / "function.yaml")
        .read_text()
        .replace("name: hello", "name: short-lived")
    )
    cluster.run("apply", "-f", "-", namespace=cluster.apps, stdin=manifest)
    wait_for(lambda: cluster.get("deploy", "short-lived"), 120, "the Deployment")
    cluster.run("delete", "fn", "short-lived", namespace=cluster.apps)
    for kind, name in (
        ("deploy", "short-lived"),
        ("svc", "short-lived"),
        ("cm", "short-lived-code"),
    ):
        wait_for(lambda k=kind, n=name: cluster.get(k, n) is None, 120, f"{kind}/{name} gone")
