"""Kubernetes object Triggers, the pure parts: the chart's list of watchable kinds, which
events a Trigger selects, the event a Function receives, the de-duplication key, what a
relist finds, the operator's verdict, and one shared watch per kind and namespace."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hanshu_api.event_sources import (
    KubernetesSource,
    WatchableKind,
    parse_watchable_kinds,
    watchable_kinds_from_env,
)
from hanshu_api.models import SpecInvalid, parse_trigger_spec
from hanshu_api.settings import ConfigError
from hanshu_gateway.catalog import Catalog
from hanshu_gateway.object_watch import (
    ObjectTrigger,
    ObjectWatches,
    WatchTarget,
    dedup_key,
    event_body,
    relist_events,
)
from hanshu_operator.config import OperatorConfig
from hanshu_operator.trigger_status import kubernetes_delivery

CONFIG_MAP = KubernetesSource("v1", "ConfigMap")


def obj(name: str, version: str, uid: str | None = None, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": uid or f"uid-{name}",
            "resourceVersion": version,
            "labels": labels,
        }
    }


def test_the_chart_list_names_kind_and_resource():
    kinds = parse_watchable_kinds("v1/ConfigMap=configmaps, apps/v1/Deployment=deployments,")
    assert kinds == {
        ("v1", "ConfigMap"): WatchableKind("v1", "ConfigMap", "configmaps"),
        ("apps/v1", "Deployment"): WatchableKind("apps/v1", "Deployment", "deployments"),
    }
    assert parse_watchable_kinds("") == {}


@pytest.mark.parametrize(
    "text", ["v1/ConfigMap", "ConfigMap=configmaps", "v1/configmap=configmaps", "v1/ConfigMap="]
)
def test_a_malformed_chart_list_names_the_variable(text: str):
    with pytest.raises(ConfigError, match="HANSHU_WATCHABLE_KINDS"):
        watchable_kinds_from_env({"HANSHU_WATCHABLE_KINDS": text})


def test_the_spec_parses_with_all_event_types_by_default():
    spec = parse_trigger_spec(
        {
            "functionRef": {"name": "f"},
            "kubernetes": {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "labelSelector": {"matchLabels": {"app": "web"}},
            },
        },
        "ns",
    )
    assert spec.source_type == "kubernetes"
    assert spec.kubernetes == KubernetesSource(
        "v1", "ConfigMap", (("app", "web"),), ("ADDED", "MODIFIED", "DELETED")
    )


def test_another_namespace_is_refused():
    with pytest.raises(SpecInvalid, match="only watch objects in its own namespace"):
        parse_trigger_spec(
            {
                "functionRef": {"name": "f"},
                "kubernetes": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "other"},
            },
            "ns",
        )


def test_a_trigger_selects_by_labels_and_event_type():
    source = KubernetesSource("v1", "ConfigMap", (("app", "web"),), ("ADDED", "DELETED"))
    assert source.selects("ADDED", {"app": "web", "tier": "x"})
    assert not source.selects("ADDED", {"app": "api"})
    assert not source.selects("ADDED", None)
    assert not source.selects("MODIFIED", {"app": "web"})
    assert CONFIG_MAP.selects("MODIFIED", None)


def test_the_event_and_its_key():
    trigger = ObjectTrigger("ns", "maps", "echo", CONFIG_MAP)
    changed = obj("settings", "42")
    body = event_body(trigger, "MODIFIED", changed)
    assert body["eventType"] == "MODIFIED"
    assert body["type"] == "hanshu.kubernetes.modified"
    assert body["triggerName"] == "maps"
    assert body["subject"] == "settings"
    assert body["object"] == changed
    assert dedup_key(trigger.key, changed, "MODIFIED") == "k8s/ns/maps/uid-settings/42/MODIFIED"


def test_a_relist_sends_only_what_changed_meanwhile():
    known = {
        "uid-same": obj("same", "1"),
        "uid-edited": obj("edited", "1"),
        "uid-gone": obj("gone", "1"),
    }
    listed = [obj("same", "1"), obj("edited", "5"), obj("new", "6")]
    found = [(kind, o["metadata"]["name"]) for kind, o in relist_events(known, listed)]
    assert found == [("MODIFIED", "edited"), ("ADDED", "new"), ("DELETED", "gone")]


def test_the_operator_refuses_an_unlisted_kind_naming_the_chart_value():
    listed = OperatorConfig(watchable_kinds=parse_watchable_kinds("v1/ConfigMap=configmaps"))
    assert kubernetes_delivery(listed, CONFIG_MAP).status == "True"
    refused = kubernetes_delivery(listed, KubernetesSource("apps/v1", "Deployment"))
    assert (refused.status, refused.reason) == ("False", "KindNotWatchable")
    assert "gateway.watchableKinds" in refused.message
    assert "Deployment (apps/v1)" in refused.message


async def test_triggers_on_one_kind_share_one_watch_and_an_unlisted_kind_gets_none():
    started: list[tuple[str, str, str]] = []
    stopped = asyncio.Event()

    async def follow(api_version: str, plural: str, namespace: str, *_: Any) -> None:
        started.append((api_version, plural, namespace))
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    watches = ObjectWatches(
        parse_watchable_kinds("v1/ConfigMap=configmaps"),
        follow,
        Catalog(10, lambda ns, t: None),
        lambda: None,
    )
    first = ObjectTrigger("ns", "a", "f", CONFIG_MAP)
    second = ObjectTrigger("ns", "b", "f", KubernetesSource("v1", "ConfigMap", (("x", "y"),)))
    watches.put(first.key, first)
    watches.put(second.key, second)
    watches.put(
        ("ns", "c"), ObjectTrigger("ns", "c", "f", KubernetesSource("apps/v1", "Deployment"))
    )
    await asyncio.sleep(0)  # the watch task runs its first step
    assert started == [("v1", "configmaps", "ns")]
    assert watches.targets == {WatchTarget("v1", "configmaps", "ns")}

    watches.put(first.key, None)
    assert watches.targets == {WatchTarget("v1", "configmaps", "ns")}
    watches.load("ns", [])  # the namespace's list has no kubernetes Trigger any more
    assert watches.targets == set()
    await asyncio.wait_for(stopped.wait(), 5)
    await watches.stop()
