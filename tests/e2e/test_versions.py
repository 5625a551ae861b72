"""Versions and aliases on a real cluster: publish twice with the hanshu command, a
FunctionVersion the API server keeps immutable, an alias split 50/50 through the gateway
(both versions answer, each saying its number), a sticky caller staying on one version,
rollback sending everything back, an alias on a missing version refused with a condition.
Skips, like the rest of the e2e suite, when no cluster is reachable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest
from hanshu_api.versions import STICKY_HEADER, VERSION_HEADER

from tests.support.real_cluster import Cluster, wait_for

pytestmark = pytest.mark.e2e

NAME = "e2e-versions"
PATH = "/e2e-versions"
CODE = """def handler(event, context):
    return {{"statusCode": 200, "body": "{greeting} " + context.function_version}}
"""


def function(greeting: str, aliases: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "handler": "index.handler",
        "code": {"inline": {"index.py": CODE.format(greeting=greeting)}},
        "scaling": {"minReplicas": 0, "maxReplicas": 2},
    }
    if aliases is not None:
        spec["aliases"] = aliases
    return {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Function",
        "metadata": {"name": NAME},
        "spec": spec,
    }


TRIGGER = {
    "apiVersion": "hanshu.io/v1alpha1",
    "kind": "Trigger",
    "metadata": {"name": NAME},
    "spec": {"functionRef": {"name": NAME, "alias": "live"}, "http": {"path": PATH}},
}


def apply(cluster: Cluster, manifest: dict[str, Any]) -> None:
    cluster.run("apply", "-f", "-", namespace=cluster.apps, stdin=json.dumps(manifest))


def hanshu(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hanshu_cli", "-n", cluster.apps, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


def call(gateway_url: str, headers: dict[str, str] | None = None) -> tuple[str, str]:
    """(the version the reply names, its body)."""
    request = urllib.request.Request(gateway_url + PATH, headers=headers or {})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return reply.headers.get(VERSION_HEADER, ""), reply.read().decode()


def test_publish_split_stick_and_roll_back(cluster: Cluster, gateway_url: str):
    apply(cluster, function("one"))
    wait_for(lambda: (cluster.condition("fn", NAME) or {}).get("status") == "True", 180, "Ready")
    first = hanshu(cluster, "publish", NAME)
    assert "published version 1" in first.stdout, first.stderr

    refused = cluster.run(
        "patch",
        "fnv",
        f"{NAME}-v1",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"description": "rewritten"}}),
        namespace=cluster.apps,
        check=False,
    )
    assert refused.returncode != 0
    assert "immutable" in refused.stderr

    apply(cluster, function("two"))
    second = hanshu(cluster, "publish", NAME)
    assert "published version 2" in second.stdout, second.stderr

    split = hanshu(cluster, "alias", "set", NAME, "live", "--version", "1", "--weight", "2=50%")
    assert split.returncode == 0, split.stderr
    apply(cluster, TRIGGER)
    wait_for(lambda: cluster.get("deploy", f"{NAME}-v2"), 120, "version 2's Deployment")

    def both_answer() -> bool:
        seen = {call(gateway_url) for _ in range(40)}
        return {("1", "one 1"), ("2", "two 2")} <= seen

    wait_for(both_answer, 240, "both versions answering through live", interval=2)

    sticky = {call(gateway_url, {STICKY_HEADER: "alice"})[0] for _ in range(20)}
    assert len(sticky) == 1, sticky

    back = hanshu(cluster, "rollback", NAME, "live")
    assert back.returncode == 0, back.stderr
    wait_for(lambda: {call(gateway_url)[0] for _ in range(20)} == {"1"}, 120, "everything on 1")

    apply(cluster, function("two", aliases=[{"name": "live", "version": 9}]))
    condition = wait_for(
        lambda: (
            (cluster.condition("fn", NAME, "AliasesValid") or {}).get("status") == "False"
            and cluster.condition("fn", NAME, "AliasesValid")
        ),
        120,
        "AliasesValid=False",
    )
    assert condition["reason"] == "VersionNotPublished"
    with pytest.raises(urllib.error.HTTPError) as unavailable:
        call(gateway_url)
    assert unavailable.value.code == 503

    cluster.run("delete", "trg", NAME, namespace=cluster.apps, check=False)
    cluster.run("delete", "fn", NAME, namespace=cluster.apps, check=False)
