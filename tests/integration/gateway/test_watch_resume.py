"""Watches that go silent: the gateway reconnects after its idle bound, resumes from the last
resourceVersion it saw (an event's or a bookmark's), and lists again only when the API
server says that version is gone (410).

The API server here is a small aiohttp app on loopback whose watches replay what happened
after the version asked for and then hang without closing, as a connection that died
quietly does (no FIN, no RST, no error: nothing).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL
from hanshu_api.kube import path_for
from hanshu_gateway.kube_gateway import KubeGateway

from devtools.kube_emulator import write_kubeconfig
from tests.support.helpers import eventually
from tests.support.servers import free_port, serving
from tests.support.silent_api import SilentApi

CODE = Path(__file__).resolve().parent.parent / "runtime_code"
NS = "ns1"
TRIGGERS = path_for(API_VERSION, TRIGGER_PLURAL, NS)
FUNCTIONS = path_for(API_VERSION, FUNCTION_PLURAL, NS)
SLICES = path_for("discovery.k8s.io/v1", "endpointslices", NS)
IDLE_SECONDS = 0.5


def _trigger(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Trigger",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"functionRef": {"name": "echo"}, "http": {"path": f"/{name}"}},
    }


@pytest.fixture
async def silent_api() -> AsyncIterator[tuple[SilentApi, str]]:
    api = SilentApi()
    app = web.Application()
    app.router.add_get("/{tail:.*}", api.handle)
    async with serving(app) as port:
        try:
            yield api, f"http://127.0.0.1:{port}"
        finally:
            api.closing.set()


@pytest.fixture
async def gateway(silent_api, runtime_factory, tmp_path) -> AsyncIterator[str]:
    api, url = silent_api
    runtime = runtime_factory(CODE, "handlers.echo")
    function = {
        "metadata": {"name": "echo", "namespace": NS},
        "spec": {"handler": "handlers.echo", "code": {"image": "x"}},
    }
    api.record(FUNCTIONS, "ADDED", function)
    api.record(
        SLICES,
        "ADDED",
        {
            "metadata": {
                "name": "echo-x",
                "namespace": NS,
                "labels": {"hanshu.io/function": "echo"},
            },
            "ports": [{"name": "http", "port": runtime.port}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        },
    )
    api.record(TRIGGERS, "ADDED", _trigger("first"))
    port = free_port()
    kube_gateway = KubeGateway.from_env(
        {
            "KUBECONFIG": str(write_kubeconfig(tmp_path / "kubeconfig", url, NS)),
            "HANSHU_WATCH_NAMESPACES": NS,
            "HANSHU_GATEWAY_NAMESPACE": "hanshu-system",
            "HANSHU_WATCH_IDLE_SECONDS": str(IDLE_SECONDS),
            "HANSHU_GATEWAY_HOST": "127.0.0.1",
            "HANSHU_GATEWAY_PORT": str(port),
            "HANSHU_GATEWAY_INTERNAL_PORT": str(free_port()),
        }
    )
    await kube_gateway.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await kube_gateway.stop()


async def _status(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(url) as reply:
        await reply.read()
        return reply.status


async def _serves(url: str, status: int) -> bool:
    return await _status(url) == status


async def test_a_silent_watch_resumes_from_the_last_version_seen(silent_api, gateway):
    api, _ = silent_api
    await eventually(lambda: _serves(f"{gateway}/first", 200), message="the listed Trigger")
    listed_at = api.lists(TRIGGERS)[0]
    assert api.watches(TRIGGERS)[0]["resourceVersion"] == str(api.version)
    assert listed_at.get("resourceVersion") is None

    # Nothing pushes this to the open stream: only a reconnect can bring it.
    added_at = api.record(TRIGGERS, "ADDED", _trigger("second"))
    await eventually(
        lambda: _serves(f"{gateway}/second", 200),
        timeout=IDLE_SECONDS * 6,
        message="a Trigger added after the stream went silent",
    )
    # The next reconnect starts from that event's version ...
    await eventually(
        lambda: api.watches(TRIGGERS)[-1]["resourceVersion"] == str(added_at),
        timeout=IDLE_SECONDS * 6,
        message="a watch resumed from the event's resourceVersion",
    )
    # ... and a bookmark moves it on with no object to show for it.
    marked_at = api.bookmark(TRIGGERS)
    await eventually(
        lambda: api.watches(TRIGGERS)[-1]["resourceVersion"] == str(marked_at),
        timeout=IDLE_SECONDS * 6,
        message="a watch resumed from the bookmark's resourceVersion",
    )
    assert len(api.lists(TRIGGERS)) == 1, "resuming must not list again"
    for query in api.watches(TRIGGERS):
        assert query["allowWatchBookmarks"] == "true"
        assert 300 <= int(query["timeoutSeconds"]) < 600


async def test_a_version_gone_from_history_lists_again(silent_api, gateway):
    api, _ = silent_api
    await eventually(lambda: _serves(f"{gateway}/first", 200), message="the listed Trigger")
    # While the stream is silent, the first Trigger goes, a third comes, and the server's
    # history is compacted past the gateway's version: resuming is answered 410.
    first = api.items(TRIGGERS)[0]
    api.record(TRIGGERS, "DELETED", first)
    api.record(TRIGGERS, "ADDED", _trigger("third"))
    api.expired_below = api.version  # history kept from the current version on only
    await eventually(
        lambda: _serves(f"{gateway}/third", 200),
        timeout=IDLE_SECONDS * 6,
        message="the Trigger seen by listing again",
    )
    assert await _status(f"{gateway}/first") == 404  # deleted while nobody watched
    lists = api.lists(TRIGGERS)
    assert len(lists) == 2
    # The watch after the second list starts from its version, which the server still has.
    await eventually(
        lambda: api.watches(TRIGGERS)[-1]["resourceVersion"] == str(api.version),
        message="a watch from the version of the second list",
    )
    assert len(api.lists(TRIGGERS)) == 2


async def test_the_gateway_is_not_ready_until_it_has_listed_everything(silent_api, tmp_path):
    """A new gateway pod must not take traffic with an empty route table (404s in a
    rollout): /readyz says 503 until every watch has listed once."""
    api, url = silent_api
    api.record(TRIGGERS, "ADDED", _trigger("first"))
    api.lists_answered.clear()
    internal = free_port()
    kube_gateway = KubeGateway.from_env(
        {
            "KUBECONFIG": str(write_kubeconfig(tmp_path / "kubeconfig", url, NS)),
            "HANSHU_WATCH_NAMESPACES": NS,
            "HANSHU_GATEWAY_NAMESPACE": "hanshu-system",
            "HANSHU_GATEWAY_HOST": "127.0.0.1",
            "HANSHU_GATEWAY_PORT": str(free_port()),
            "HANSHU_GATEWAY_INTERNAL_PORT": str(internal),
        }
    )
    await kube_gateway.start()
    try:
        readyz = f"http://127.0.0.1:{internal}/readyz"
        await eventually(lambda: len(api.lists(TRIGGERS)) == 1, message="the list asked for")
        assert await _status(readyz) == 503
        assert await _status(f"http://127.0.0.1:{internal}/healthz") == 200  # alive all along
        api.lists_answered.set()
        await eventually(lambda: _serves(readyz, 200), message="ready once everything is listed")
    finally:
        await kube_gateway.stop()
