"""The server-side apply emulation in devtools/kube_emulator.py: its rule as pure functions,
then through HTTP with the client the operator uses.

It is a model good enough for a few appliers, so the operator's tests can see what a
removed field does. What only a real API server decides (field ownership with map-lists
merged by key, Update managers, every default, validation) is covered by the e2e suite:
tests/e2e/test_apply.py removes an inline file and a toleration on a real cluster.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from hanshu_api.kube import ApiError, KubeClient, KubeConfig, path_for

from devtools.kube_emulator import (
    ApplyingEmulator,
    apply_manifest,
    conflicts,
    field_paths,
    merge_patch,
    owned_paths,
    still_owned,
    without_fields,
    written_fields,
)

BASE = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}}


def config_map(**data: str) -> dict[str, Any]:
    return {**BASE, "data": data}


def test_a_field_the_manager_stops_applying_is_removed():
    live = {**config_map(a="1", b="2"), "status": {"x": 1}}
    result = apply_manifest(live, config_map(a="1"), previous=config_map(a="1", b="2"))
    assert result["data"] == {"a": "1"}
    assert result["status"] == {"x": 1}  # nobody applies status


def test_a_field_another_manager_applies_stays():
    live = {**BASE, "spec": {"replicas": 3, "paused": False}}
    previous = {**BASE, "spec": {"replicas": 0, "paused": False}}
    autoscaler = {**BASE, "spec": {"replicas": 0}}
    result = apply_manifest(live, {**BASE, "spec": {"paused": False}}, previous, [autoscaler])
    assert result["spec"] == {"replicas": 3, "paused": False}


def test_fields_nobody_applied_stay_and_status_is_never_applied():
    live = {**config_map(a="1"), "metadata": {**BASE["metadata"], "uid": "u1"}}
    result = apply_manifest(live, {**config_map(a="2"), "status": {"ignored": True}}, None)
    assert result["metadata"]["uid"] == "u1"
    assert result["data"] == {"a": "2"}
    assert "status" not in result


def test_lists_are_one_field_and_emptied_maps_go():
    previous = {**BASE, "spec": {"tolerations": [{"key": "a"}], "nodeSelector": {"disk": "ssd"}}}
    live = {**previous, "spec": {**previous["spec"], "other": 1}}
    result = apply_manifest(live, {**BASE, "spec": {"other": 1}}, previous)
    assert result["spec"] == {"other": 1}
    replaced = apply_manifest(live, {**BASE, "spec": {"tolerations": [{"key": "b"}]}}, previous)
    assert replaced["spec"]["tolerations"] == [{"key": "b"}]


def test_field_paths_and_removal():
    manifest = {"a": {"b": 1, "c": [1, 2], "d": {}}, "e": "x"}
    assert field_paths(manifest) == {("a", "b"), ("a", "c"), ("a", "d"), ("e",)}
    assert without_fields(manifest, [("a", "b"), ("a", "c"), ("a", "d")]) == {"e": "x"}
    assert without_fields(manifest, [("missing", "path")]) == manifest


def test_a_different_value_conflicts_and_the_same_value_is_shared():
    owner = ("autoscaler", "Update")
    holds = {"spec": {"replicas": 2}}
    assert conflicts({**BASE, "spec": {"replicas": 3}}, {owner: holds}) == {
        owner: {("spec", "replicas")}
    }
    assert conflicts({**BASE, "spec": {"replicas": 2}}, {owner: holds}) == {}
    assert conflicts(BASE, {("other", "Apply"): {**BASE, "metadata": {"name": "c"}}}) == {}


def test_a_plain_write_takes_the_fields_it_changed():
    before = {**BASE, "spec": {"replicas": 0, "paused": False}}
    patch = {"spec": {"replicas": 3, "paused": False, "gone": None}}
    after = merge_patch(before, patch)
    assert after == {**BASE, "spec": {"replicas": 3, "paused": False}}
    assert written_fields(patch, before, after) == {("spec", "replicas")}
    assert still_owned(before, after) == {**BASE, "spec": {"paused": False}}
    assert owned_paths(BASE) == set()  # an object's identity is nobody's field


# Through HTTP, with the operator's client.

DEPLOYMENTS = "apps/v1/deployments"
PATH = path_for("apps/v1", "deployments", "ns", "d")


def deployment(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "ns"},
        "spec": spec,
    }


@pytest.fixture
async def kube(kmock: ApplyingEmulator) -> AsyncIterator[KubeClient]:
    kmock.resources.load_bundled()
    client = KubeClient(KubeConfig(server=str(kmock.url).rstrip("/")))
    yield client
    await client.close()


async def test_apply_creates_then_removes_what_is_no_longer_applied(
    kmock: ApplyingEmulator, kube: KubeClient
):
    created = await kube.apply(PATH, deployment(paused=True, minReadySeconds=5), "op")
    assert created["spec"] == {"paused": True, "minReadySeconds": 5, "replicas": 1}
    updated = await kube.apply(PATH, deployment(minReadySeconds=5), "op")
    assert updated["spec"] == {"minReadySeconds": 5, "replicas": 1}
    assert kmock.objects[DEPLOYMENTS, "ns", "d"]["spec"] == updated["spec"]
    [entry] = updated["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("op", "Apply")
    assert entry["fieldsV1"] == {"f:spec": {"f:minReadySeconds": {}}}


async def test_a_dropped_replica_count_defaults_to_one_unless_handed_over(kube: KubeClient):
    await kube.apply(PATH, deployment(replicas=0, paused=True), "op")
    alone = await kube.apply(PATH, deployment(paused=True), "op")
    assert alone["spec"]["replicas"] == 1  # what a real API server does too

    await kube.apply(PATH, deployment(replicas=0, paused=True), "op")
    await kube.apply(PATH, deployment(replicas=0), "autoscaler")
    handed = await kube.apply(PATH, deployment(paused=True), "op")
    assert handed["spec"]["replicas"] == 0
    await kube.merge_patch(f"{PATH}/scale", {"spec": {"replicas": 4}})
    assert (await kube.apply(PATH, deployment(paused=False), "op"))["spec"]["replicas"] == 4


async def test_a_plain_write_owns_what_it_changed(kmock: ApplyingEmulator, kube: KubeClient):
    await kube.apply(PATH, deployment(replicas=0, paused=True), "op")
    await kube.request(
        "PATCH",
        f"{PATH}/scale",
        body={"spec": {"replicas": 3}},
        content_type="application/merge-patch+json",
        params={"fieldManager": "scaler"},
    )
    owners = kmock.owners(DEPLOYMENTS, "ns", "d")
    assert owners[("scaler", "Update")] == {"spec": {"replicas": 3}}
    assert owners[("op", "Apply")]["spec"] == {"paused": True}
    # The writer holds it now: dropping it from the apply keeps it, a handover conflicts.
    assert (await kube.apply(PATH, deployment(paused=True), "op"))["spec"]["replicas"] == 3
    with pytest.raises(ApiError) as refused:
        await kube.request(
            "PATCH",
            PATH,
            body=deployment(replicas=0),
            content_type="application/apply-patch+yaml",
            params={"fieldManager": "handover"},
        )
    assert refused.value.status == 409
    managers = {
        (e["manager"], e["operation"]): e["fieldsV1"]
        for e in kmock.objects[DEPLOYMENTS, "ns", "d"]["metadata"]["managedFields"]
    }
    assert managers == {
        ("op", "Apply"): {"f:spec": {"f:paused": {}}},
        ("scaler", "Update"): {"f:spec": {"f:replicas": {}}},
    }


async def test_apply_conflicts_unless_forced(kube: KubeClient):
    await kube.apply(PATH, deployment(replicas=2), "autoscaler")
    with pytest.raises(ApiError) as refused:
        await kube.request(
            "PATCH",
            PATH,
            body=deployment(replicas=3),
            content_type="application/apply-patch+yaml",
            params={"fieldManager": "other"},
        )
    assert refused.value.status == 409
    assert (await kube.apply(PATH, deployment(replicas=3), "other"))["spec"]["replicas"] == 3


async def test_apply_needs_a_field_manager_kind_and_the_object_of_the_url(kube: KubeClient):
    for body, params in (
        (deployment(), {}),
        ({"metadata": {"name": "d"}}, {"fieldManager": "op"}),
        ({**deployment(), "metadata": {"name": "other"}}, {"fieldManager": "op"}),
        ({**deployment(), "metadata": {"name": "d", "namespace": "x"}}, {"fieldManager": "op"}),
    ):
        with pytest.raises(ApiError) as refused:
            await kube.request(
                "PATCH",
                PATH,
                body=body,
                content_type="application/apply-patch+yaml",
                params=params,
            )
        assert refused.value.status == 400
