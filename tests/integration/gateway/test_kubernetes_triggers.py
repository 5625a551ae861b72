"""Kubernetes object Triggers at the gateway: ConfigMap events from the API (kmock) become
Event invocations in JetStream (a real nats-server), one per create, update and delete;
objects the Trigger does not select, and kinds the chart did not list, give none."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from aiohttp import web
from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL
from hanshu_api.invocations import EVENT, STREAM, InvocationHeaders, subject_for
from hanshu_api.kube import KubeClient, path_for
from hanshu_cli.local_nats import LocalNats
from hanshu_gateway.kube_gateway import KubeGateway
from hanshu_gateway.object_watch import WatchTarget

from devtools.kube_emulator import write_kubeconfig
from tests.support.helpers import eventually
from tests.support.kube_gateway import NS, function, kube_client
from tests.support.servers import free_port, serving
from tests.support.silent_api import SilentApi

CONFIGMAPS = WatchTarget("v1", "configmaps", NS)


@pytest.fixture
def local_nats(tmp_path: Path) -> Iterator[LocalNats]:
    server = LocalNats(store_dir=str(tmp_path / "nats")).start()
    yield server
    server.close()


def watching(name: str, api_version: str, kind: str, **source: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Trigger",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "functionRef": {"name": "echo"},
            "kubernetes": {"apiVersion": api_version, "kind": kind, **source},
        },
    }


def config_map(name: str, namespace: str = NS, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"greeting": "hello"},
    }


@pytest.fixture
async def gateway(
    kmock: Any, tmp_path: Path, local_nats: LocalNats
) -> AsyncIterator[tuple[KubeGateway, KubeClient]]:
    async with kube_client(kmock, tmp_path) as (kube, kubeconfig):
        await kube.create(path_for(API_VERSION, FUNCTION_PLURAL, NS), function("echo"))
        await kube.create(
            path_for(API_VERSION, TRIGGER_PLURAL, NS),
            watching("maps", "v1", "ConfigMap", labelSelector={"matchLabels": {"app": "web"}}),
        )
        await kube.create(
            path_for(API_VERSION, TRIGGER_PLURAL, NS), watching("deploys", "apps/v1", "Deployment")
        )
        running = KubeGateway.from_env(
            {
                "KUBECONFIG": str(kubeconfig),
                "HANSHU_GATEWAY_HOST": "127.0.0.1",
                "HANSHU_GATEWAY_PORT": str(free_port()),
                "HANSHU_GATEWAY_INTERNAL_PORT": str(free_port()),
                "HANSHU_NATS_URL": local_nats.url,
                "HANSHU_WATCHABLE_KINDS": "v1/ConfigMap=configmaps",
            }
        )
        await running.start()
        try:
            yield running, kube
        finally:
            await running.stop()


async def test_create_update_delete_each_invoke_once_and_an_unlisted_kind_is_not_watched(
    gateway: tuple[KubeGateway, KubeClient], local_nats: LocalNats
):
    running, kube = gateway
    # Only the listed kind is watched: the Deployment Trigger gets no watch at all.
    await eventually(lambda: running.objects.listed(CONFIGMAPS), message="ConfigMaps listed")
    assert running.objects.targets == {CONFIGMAPS}

    maps = path_for("v1", "configmaps", NS)
    await kube.create(path_for("v1", "configmaps", "elsewhere"), config_map("far", "elsewhere"))
    await kube.create(maps, config_map("plain"))  # without the Trigger's label
    await kube.create(maps, config_map("settings", app="web"))
    await kube.merge_patch(f"{maps}/settings", {"data": {"greeting": "hi"}})
    await kube.delete(f"{maps}/settings")

    stored = await _stored_until_a_delete(running, local_nats)
    events = [json.loads(message.data) for message in stored]

    # One watch, in order: the unlabelled ConfigMap's events came before these, and the
    # other namespace is not watched; exactly these three were stored.
    assert [e["eventType"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert {e["object"]["metadata"]["name"] for e in events} == {"settings"}
    assert events[1]["object"]["data"] == {"greeting": "hi"}
    assert [e["type"] for e in events] == [
        "hanshu.kubernetes.added",
        "hanshu.kubernetes.modified",
        "hanshu.kubernetes.deleted",
    ]
    assert {(e["triggerName"], e["kind"], e["namespace"]) for e in events} == {
        ("maps", "ConfigMap", NS)
    }
    headers = [InvocationHeaders.from_headers(m.headers or {}) for m in stored]
    assert {h.invocation_type for h in headers} == {EVENT}


def _stored_object(uid: str, name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS, "uid": uid}, "data": {"v": name}}


async def test_a_lost_position_relists_and_sends_only_what_changed(
    tmp_path: Path, local_nats: LocalNats
):
    """The API server compacted its history past the watch's version (410): the gateway
    lists again and sends the changes it missed, not the objects it had seen already."""
    api = SilentApi()
    app = web.Application()
    app.router.add_get("/{tail:.*}", api.handle)
    maps = path_for("v1", "configmaps", NS)
    api.record(
        path_for(API_VERSION, FUNCTION_PLURAL, NS),
        "ADDED",
        {"metadata": {"name": "echo", "namespace": NS}, "spec": function("echo")["spec"]},
    )
    api.record(
        path_for(API_VERSION, TRIGGER_PLURAL, NS), "ADDED", watching("maps", "v1", "ConfigMap")
    )
    for name in ("same", "edited", "gone"):
        api.record(maps, "ADDED", _stored_object(f"uid-{name}", name))
    async with serving(app) as port:
        running = KubeGateway.from_env(
            {
                "KUBECONFIG": str(
                    write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}", NS)
                ),
                "HANSHU_WATCH_NAMESPACES": NS,
                "HANSHU_WATCH_IDLE_SECONDS": "0.5",
                "HANSHU_GATEWAY_HOST": "127.0.0.1",
                "HANSHU_GATEWAY_PORT": str(free_port()),
                "HANSHU_GATEWAY_INTERNAL_PORT": str(free_port()),
                "HANSHU_NATS_URL": local_nats.url,
                "HANSHU_WATCHABLE_KINDS": "v1/ConfigMap=configmaps",
            }
        )
        await running.start()
        try:
            await eventually(lambda: running.objects.listed(CONFIGMAPS), message="the baseline")
            # While its stream is silent: one edited, one gone, one new, and the history
            # compacted past the watch's version.
            edited = api.items(maps)[1]
            api.record(maps, "MODIFIED", {**edited, "data": {"v": "changed"}})
            api.record(maps, "DELETED", api.items(maps)[2])
            api.record(maps, "ADDED", _stored_object("uid-new", "new"))
            api.expired_below = api.version
            stored = [json.loads(m.data) for m in await _stored_until_a_delete(running, local_nats)]
        finally:
            api.closing.set()
            await running.stop()
    found = [(e["eventType"], e["object"]["metadata"]["name"]) for e in stored]
    assert found == [("MODIFIED", "edited"), ("ADDED", "new"), ("DELETED", "gone")]
    assert len(api.lists(maps)) == 2  # the baseline and the relist after the 410


async def _stored_until_a_delete(running: KubeGateway, local_nats: LocalNats) -> list[Any]:
    """The messages stored for the echo Function, up to and including a DELETED event."""
    client = await nats.connect(local_nats.url)
    try:
        await eventually(lambda: running.gateway.intake and running.gateway.intake.available)
        subscription = await client.jetstream().pull_subscribe(
            subject_for((NS, "echo")), stream=STREAM
        )
        stored: list[Any] = []

        async def until_the_delete() -> bool:
            with contextlib.suppress(TimeoutError):  # nothing more yet
                stored.extend(await subscription.fetch(10, timeout=0.5))
            return any(json.loads(m.data)["eventType"] == "DELETED" for m in stored)

        await eventually(until_the_delete, message="the DELETED event stored")
    finally:
        await client.close()
    return stored
