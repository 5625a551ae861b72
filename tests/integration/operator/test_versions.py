"""Published versions under the operator (kopf against kmock): children only while an
alias or a Trigger references a version, retention that never deletes a referenced one,
an alias on a missing version refused with a condition, a version's Deployment scaling
from and to zero like any Function's, and a canary's rollback mirrored as a condition."""

from __future__ import annotations

import copy
from typing import Any

from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL
from hanshu_api.replica_scale import scale
from hanshu_api.versions import DEFAULT_KEEP_UNREFERENCED, FUNCTION_VERSION_PLURAL
from hanshu_cli.publishing import version_manifest

from tests.support.helpers import eventually
from tests.support.operator_cluster import NAMESPACE, Cluster
from tests.support.operator_objects import DEPLOYMENTS, FN, TRG, hello, trigger

FNV = f"{API_VERSION}/{FUNCTION_VERSION_PLURAL}"
SERVICES = "v1/services"


async def _publish(cluster: Cluster, number: int, **changes: Any) -> None:
    """What ``hanshu publish`` creates, from the Function as it is (plus ``changes``, so
    that each snapshot differs)."""
    function = copy.deepcopy(cluster.object(FN, "hello"))
    function["spec"].update(changes)
    manifest = version_manifest(function, number)
    await cluster.create(API_VERSION, FUNCTION_VERSION_PLURAL, manifest)


async def _set_aliases(cluster: Cluster, aliases: list[dict[str, Any]] | None) -> None:
    await cluster.patch(API_VERSION, FUNCTION_PLURAL, "hello", {"spec": {"aliases": aliases}})


def _status(cluster: Cluster) -> dict[str, Any]:
    return cluster.object(FN, "hello").get("status") or {}


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


async def _function_ready(cluster: Cluster) -> None:
    await cluster.create(API_VERSION, FUNCTION_PLURAL, hello())
    await eventually(lambda: cluster.condition(FN, "hello"), message="the Function's status")


async def test_a_version_runs_only_while_an_alias_references_it(operator: Cluster):
    await _function_ready(operator)
    await _publish(operator, 1)
    await eventually(lambda: _status(operator).get("latestVersion") == 1, message="version 1")
    # Published but referenced by nothing: no pods, no Deployment at all.
    assert not operator.exists(DEPLOYMENTS, "hello-v1")

    await _set_aliases(operator, [{"name": "live", "version": 1}])
    deployment = await eventually(
        lambda: operator.object(DEPLOYMENTS, "hello-v1"), message="version 1's Deployment"
    )
    labels = deployment["metadata"]["labels"]
    assert labels["hanshu.io/function"] == "hello-v1"
    assert labels["hanshu.io/version-of"] == "hello"
    assert labels["hanshu.io/version"] == "1"
    assert deployment["spec"]["replicas"] == 0  # from zero, like any Function
    env = _env(deployment)
    assert (env["HANSHU_FUNCTION_NAME"], env["HANSHU_FUNCTION_VERSION"]) == ("hello", "1")
    owner = deployment["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("FunctionVersion", "hello-v1")
    service = operator.object(SERVICES, "hello-v1")
    assert service["spec"]["selector"] == {"hanshu.io/function": "hello-v1"}
    assert operator.exists("v1/configmaps", "hello-v1-code")

    entries = await eventually(lambda: _status(operator).get("versions"), message="versions")
    assert entries == [
        {"version": "1", "replicas": 0, "readyReplicas": 0, "trafficShare": "live 100%"}
    ]
    assert _status(operator)["aliasSummary"] == "live=1"
    assert operator.condition(FN, "hello", "AliasesValid")["status"] == "True"
    version = operator.object(FNV, "hello-v1")
    await eventually(
        lambda: (
            operator.object(FNV, "hello-v1").get("status", {}).get("referencedBy") == "alias live"
        ),
        message="the version's referencedBy",
    )
    assert version["spec"]["function"] == "hello"

    await _set_aliases(operator, None)
    await eventually(
        lambda: (
            not any(
                operator.exists(resource, name)
                for resource, name in (
                    (DEPLOYMENTS, "hello-v1"),
                    (SERVICES, "hello-v1"),
                    ("v1/configmaps", "hello-v1-code"),
                )
            )
        ),
        message="the version's children gone",
    )
    assert operator.exists(FNV, "hello-v1")  # unreferenced, within retention


async def test_a_split_alias_runs_both_versions_and_reports_their_shares(operator: Cluster):
    await _function_ready(operator)
    await _publish(operator, 1)
    await _publish(operator, 2, timeoutSeconds=5)
    await _set_aliases(
        operator, [{"name": "live", "version": 1, "additionalVersion": 2, "additionalWeight": 10}]
    )
    await eventually(lambda: operator.object(DEPLOYMENTS, "hello-v2"), message="version 2")
    assert _env(operator.object(DEPLOYMENTS, "hello-v2"))["HANSHU_TIMEOUT"] == "5"
    assert _env(operator.object(DEPLOYMENTS, "hello-v1"))["HANSHU_TIMEOUT"] == "20"
    shares = await eventually(
        lambda: (
            {e["version"]: e["trafficShare"] for e in _status(operator).get("versions", [])}
            == {"2": "live 10%", "1": "live 90%"}
            and _status(operator)
        ),
        message="both shares",
    )
    assert shares["aliasSummary"] == "live=1,2@10%"


async def test_a_trigger_on_a_version_keeps_it_running(operator: Cluster):
    await _function_ready(operator)
    await _publish(operator, 1)
    await eventually(lambda: _status(operator).get("latestVersion") == 1, message="version 1")
    pinned = trigger("pinned", functionRef={"name": "hello", "version": 1}, http={"path": "/p"})
    await operator.create(API_VERSION, TRIGGER_PLURAL, pinned)
    await eventually(lambda: operator.object(DEPLOYMENTS, "hello-v1"), message="version 1 runs")
    await eventually(
        lambda: any(
            e["trafficShare"] == "trigger pinned" for e in _status(operator).get("versions", [])
        ),
        message="the Trigger's share",
    )
    await operator.delete(API_VERSION, TRIGGER_PLURAL, "pinned")
    await eventually(
        lambda: not operator.exists(DEPLOYMENTS, "hello-v1"), message="version 1 stops"
    )


async def test_retention_keeps_the_newest_unreferenced_and_every_referenced(operator: Cluster):
    await _function_ready(operator)
    await _set_aliases(operator, [])
    for number in range(1, 7):
        await _publish(operator, number, timeoutSeconds=number)
    await _set_aliases(operator, [{"name": "live", "version": 1}])
    # 2-6 are unreferenced: the newest DEFAULT_KEEP_UNREFERENCED of them stay.
    kept = set(range(7 - DEFAULT_KEEP_UNREFERENCED, 7))
    await eventually(
        lambda: {n for n in range(1, 7) if operator.exists(FNV, f"hello-v{n}")} == {1, *kept},
        message="retention",
    )
    assert operator.exists(DEPLOYMENTS, "hello-v1")  # the oldest, but referenced
    # The Event is posted after the delete, on its own: wait for it as for the delete.
    await eventually(
        lambda: any("hello-v2" in e["message"] for e in operator.events("VersionRetired")),
        message="the VersionRetired Event naming hello-v2",
    )


async def test_an_alias_on_a_missing_version_is_refused_with_a_condition(operator: Cluster):
    await _function_ready(operator)
    await _publish(operator, 1)
    await _set_aliases(
        operator, [{"name": "live", "version": 1, "additionalVersion": 7, "additionalWeight": 10}]
    )
    condition = await eventually(
        lambda: (
            (operator.condition(FN, "hello", "AliasesValid") or {}).get("status") == "False"
            and operator.condition(FN, "hello", "AliasesValid")
        ),
        message="AliasesValid=False",
    )
    assert condition["reason"] == "VersionNotPublished"
    assert "alias 'live' points at version 7" in condition["message"]
    ready = operator.condition(FN, "hello")
    assert (ready["status"], ready["reason"]) == ("False", "VersionNotPublished")
    await eventually(lambda: operator.object(DEPLOYMENTS, "hello-v1"), message="version 1 runs")

    await _set_aliases(operator, [{"name": "live", "version": 1}])
    await eventually(
        lambda: (operator.condition(FN, "hello", "AliasesValid") or {}).get("status") == "True",
        message="AliasesValid=True again",
    )


async def test_a_versions_replicas_are_the_autoscalers(operator: Cluster):
    await _function_ready(operator)
    await _publish(operator, 1)
    await _set_aliases(operator, [{"name": "live", "version": 1}])
    await eventually(lambda: operator.object(DEPLOYMENTS, "hello-v1"), message="version 1")
    await scale(operator.kube, (NAMESPACE, "hello-v1"), 2)  # a cold start woke it
    # Another reconcile (a second alias) re-applies the Deployment: the count stays.
    await _set_aliases(operator, [{"name": "live", "version": 1}, {"name": "beta", "version": 1}])
    await eventually(
        lambda: _status(operator).get("aliasSummary") == "beta=1 live=1", message="beta"
    )
    assert operator.object(DEPLOYMENTS, "hello-v1")["spec"]["replicas"] == 2
    await scale(operator.kube, (NAMESPACE, "hello-v1"), 0)  # idle: back to zero
    await eventually(
        lambda: operator.object(DEPLOYMENTS, "hello-v1")["spec"]["replicas"] == 0,
        message="zero",
    )
    assert operator.exists(DEPLOYMENTS, "hello-v1")  # at zero, not deleted: still referenced


async def test_a_rolled_back_canary_shows_as_a_condition(operator: Cluster):
    await _function_ready(operator)
    await _publish(operator, 1)
    await _publish(operator, 2, timeoutSeconds=5)
    canary = {"steps": [10, 50, 100], "interval": "1m"}
    await _set_aliases(
        operator, [{"name": "live", "version": 1, "additionalVersion": 2, "canary": canary}]
    )
    await eventually(lambda: operator.object(DEPLOYMENTS, "hello-v2"), message="version 2")
    # What the canary controller (the autoscaler) writes when a threshold is crossed.
    rolled_back = {
        "aliases": [{"name": "live", "version": 1}],
        "canaries": [
            {
                "name": "live",
                "phase": "RolledBack",
                "message": "error rate 21.0% over 240 requests > 5.0%",
            }
        ],
    }
    await operator.patch(API_VERSION, FUNCTION_PLURAL, "hello", {"status": rolled_back}, "status")
    condition = await eventually(
        lambda: (
            (operator.condition(FN, "hello", "CanaryHealthy") or {}).get("status") == "False"
            and operator.condition(FN, "hello", "CanaryHealthy")
        ),
        message="CanaryHealthy=False",
    )
    assert condition["reason"] == "RolledBack"
    assert condition["message"] == "alias 'live': error rate 21.0% over 240 requests > 5.0%"
    await eventually(lambda: _status(operator).get("aliasSummary") == "live=1", message="summary")
    # The operator never writes the canary controller's fields.
    assert _status(operator)["aliases"] == rolled_back["aliases"]
    assert operator.condition(FN, "hello")["status"] == "True"  # still serving, on version 1


async def test_a_trigger_on_a_missing_alias_binds_when_the_alias_appears(operator: Cluster):
    await _function_ready(operator)
    await _publish(operator, 1)
    on_alias = trigger("web", functionRef={"name": "hello", "alias": "live"}, http={"path": "/w"})
    await operator.create(API_VERSION, TRIGGER_PLURAL, on_alias)
    unbound = await eventually(
        lambda: (
            (operator.condition(TRG, "web", "FunctionBound") or {}).get("reason") == "AliasNotFound"
            and operator.condition(TRG, "web", "FunctionBound")
        ),
        message="FunctionBound=False AliasNotFound",
    )
    assert "has no alias 'live' (aliases: none)" in unbound["message"]
    await _set_aliases(operator, [{"name": "live", "version": 1}])
    await eventually(
        lambda: (operator.condition(TRG, "web", "FunctionBound") or {}).get("status") == "True",
        message="bound once the alias exists",
    )
