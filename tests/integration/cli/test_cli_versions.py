"""publish, versions, alias set and rollback against the emulated Kubernetes API, run as a
user runs them, and the refusals a user meets: a missing version, a weight outside 1-99,
a second version equal to the first, nothing to roll back."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.cli_cluster import NAMESPACE, Cluster

FUNCTIONS = "hanshu.io/v1alpha1/functions"
VERSIONS = "hanshu.io/v1alpha1/functionversions"


async def _create_function(cluster: Cluster, **spec: Any) -> None:
    body = {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "hello", "namespace": NAMESPACE, "uid": "uid-hello"},
        "spec": {
            "handler": "index.handler",
            "code": {"inline": {"index.py": "def handler(event, context):\n    return 1\n"}},
            **spec,
        },
    }
    path = f"/apis/hanshu.io/v1alpha1/namespaces/{NAMESPACE}/functions"
    async with (
        aiohttp.ClientSession(str(cluster.emulator.url)) as http,
        http.post(path, json=body) as reply,
    ):
        reply.raise_for_status()


async def _change_function(cluster: Cluster, **spec: Any) -> None:
    path = f"/apis/hanshu.io/v1alpha1/namespaces/{NAMESPACE}/functions/hello"
    async with (
        aiohttp.ClientSession(str(cluster.emulator.url)) as http,
        http.patch(
            path, json={"spec": spec}, headers={"Content-Type": "application/merge-patch+json"}
        ) as reply,
    ):
        reply.raise_for_status()


def _aliases(cluster: Cluster) -> list[dict[str, Any]]:
    return cluster.object(FUNCTIONS, "hello")["spec"].get("aliases") or []


async def test_publish_makes_the_next_version_and_an_unchanged_spec_returns_it(
    cluster: Cluster,
) -> None:
    await _create_function(cluster, timeoutSeconds=10)
    first = await cluster.hanshu("publish", "hello", "--description", "the first")
    assert first.exit_code == 0, first.stderr
    assert "published version 1 of Function hello" in first.stdout
    version = cluster.object(VERSIONS, "hello-v1")
    assert version["spec"]["function"] == "hello"
    assert version["spec"]["version"] == 1
    assert version["spec"]["description"] == "the first"
    assert version["spec"]["template"]["timeoutSeconds"] == 10
    assert version["metadata"]["ownerReferences"][0]["uid"] == "uid-hello"
    assert version["metadata"]["labels"]["hanshu.io/version-of"] == "hello"

    again = await cluster.hanshu("publish", "hello")
    assert again.exit_code == 0, again.stderr
    assert "unchanged since version 1: version 1 is returned" in again.stdout
    assert cluster.names(VERSIONS) == ["hello-v1"]

    # Moving an alias is not a change of code or settings.
    await _change_function(cluster, aliases=[{"name": "live", "version": 1}])
    assert "version 1 is returned" in (await cluster.hanshu("publish", "hello")).stdout

    await _change_function(cluster, timeoutSeconds=12)
    second = await cluster.hanshu("publish", "hello")
    assert "published version 2" in second.stdout
    assert cluster.names(VERSIONS) == ["hello-v1", "hello-v2"]
    assert "aliases" not in cluster.object(VERSIONS, "hello-v2")["spec"]["template"]

    listed = await cluster.hanshu("versions", "hello")
    assert listed.exit_code == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:3] == ["VERSION", "DIGEST", "CREATED"]
    assert lines[1].startswith("$LATEST")
    assert "= version 2" in lines[1]
    assert lines[2].startswith("2 ")
    assert lines[3].startswith("1 ")
    assert "the first" in lines[3]
    assert "live" in listed.stdout
    assert "version 1" in listed.stdout


async def test_alias_set_splits_and_rollback_sends_everything_back(cluster: Cluster) -> None:
    await _create_function(cluster)
    await cluster.hanshu("publish", "hello")
    await _change_function(cluster, timeoutSeconds=5)
    await cluster.hanshu("publish", "hello")

    pointed = await cluster.hanshu("alias", "set", "hello", "live", "--version", "1")
    assert pointed.exit_code == 0, pointed.stderr
    assert _aliases(cluster) == [{"name": "live", "version": 1}]

    split = await cluster.hanshu(
        "alias", "set", "hello", "live", "--version", "1", "--weight", "2=10%"
    )
    assert split.exit_code == 0, split.stderr
    assert "version 1 90%, version 2 10%" in split.stdout
    assert _aliases(cluster) == [
        {"name": "live", "version": 1, "additionalVersion": 2, "additionalWeight": 10}
    ]

    back = await cluster.hanshu("rollback", "hello", "live")
    assert back.exit_code == 0, back.stderr
    assert "version 1 (all traffic)" in back.stdout
    assert _aliases(cluster) == [{"name": "live", "version": 1}]

    nothing = await cluster.hanshu("rollback", "hello", "live")
    assert nothing.exit_code == 1
    assert "nothing to roll back" in nothing.stderr


async def test_bad_alias_changes_are_refused_naming_what_is_wrong(cluster: Cluster) -> None:
    await _create_function(cluster)
    await cluster.hanshu("publish", "hello")
    await _change_function(cluster, timeoutSeconds=5)
    await cluster.hanshu("publish", "hello")
    for args, complaint in (
        (("--version", "3"), "version 3 is not published (published: 1, 2)"),
        (("--version", "1", "--weight", "4=10%"), "version 4 is not published"),
        (("--version", "1", "--weight", "2=100%"), "the share must be 1-99%"),
        (("--version", "1", "--weight", "2=0%"), "the share must be 1-99%"),
        (("--version", "1", "--weight", "1=10%"), "names version 1 itself"),
        (("--version", "1", "--weight", "ten"), "must be VERSION=PERCENT%"),
    ):
        refused = await cluster.hanshu("alias", "set", "hello", "live", *args)
        assert refused.exit_code == 1, (args, refused.stdout)
        assert complaint in refused.stderr, (args, refused.stderr)
    assert _aliases(cluster) == []
    missing = await cluster.hanshu("rollback", "hello", "beta")
    assert "has no alias 'beta'" in missing.stderr


async def test_get_shows_the_newest_version_and_the_aliases_with_their_weights(
    cluster: Cluster,
) -> None:
    await _create_function(cluster)
    await cluster.set_status(
        "functions",
        "hello",
        {
            "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": ""}],
            "latestVersion": 2,
            "aliasSummary": "live=1,2@10%",
        },
    )
    shown = await cluster.hanshu("get")
    assert shown.exit_code == 0, shown.stderr
    header, row = shown.stdout.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "READY", "REPLICAS", "VERSION", "ALIASES"]
    assert row.split()[4:6] == ["2", "live=1,2@10%"]  # after READY "True (Ready)"
