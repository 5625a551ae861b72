"""The operator's decisions about published versions: what runs, what is retired, what the
Function's status says (shares, summary, conditions), and a version's children."""

from __future__ import annotations

from hanshu_api.models import parse_function_spec, parse_trigger_spec
from hanshu_api.versions import Alias, AliasRouting, FunctionTarget
from hanshu_operator.builders import VersionOf, build_deployment, build_service
from hanshu_operator.conditions import TRUE, Condition
from hanshu_operator.config import OperatorConfig
from hanshu_operator.function_status import function_conditions, version_conditions
from hanshu_operator.version_plan import (
    alias_summary,
    aliases_condition,
    canary_condition,
    referenced_versions,
    retired,
    traffic_shares,
    version_entries,
)

LIVE = Alias("live", 1, 2, 10)
BETA = Alias("beta", 3)
PINNED = ("pinned", FunctionTarget("hello", version=4))
ON_ALIAS = ("web", FunctionTarget("hello", alias="live"))
ON_LATEST = ("plain", FunctionTarget("hello"))


def test_aliases_and_version_triggers_reference_versions_and_nothing_else_does():
    referrers = referenced_versions([LIVE, BETA], [PINNED, ON_ALIAS, ON_LATEST])
    assert referrers == {
        1: ["alias live"],
        2: ["alias live"],
        3: ["alias beta"],
        4: ["trigger pinned"],
    }


def test_retention_keeps_the_newest_unreferenced_and_never_a_referenced_one():
    assert retired(range(1, 8), {1}, keep=3) == [2, 3, 4]  # 5, 6, 7 kept
    assert retired(range(1, 8), {1, 2, 3}, keep=3) == [4]
    assert retired([1, 2], set(), keep=0) == [1, 2]
    assert retired([5], {5}, keep=0) == []


def test_shares_follow_the_effective_routing_and_triggers():
    routing = {"live": AliasRouting("live", 1, 2, 10), "beta": AliasRouting("beta", 3)}
    assert traffic_shares(routing, [PINNED, ON_ALIAS, ON_LATEST]) == {
        "1": ["live 90%"],
        "2": ["live 10%"],
        "3": ["beta 100%"],
        "4": ["trigger pinned"],
        "$LATEST": ["trigger plain"],
    }
    promoted = {"live": AliasRouting("live", 1, 2, 100)}
    assert traffic_shares(promoted, []) == {"2": ["live 100%"]}


def test_the_summary_is_what_kubectl_shows():
    routing = {"live": AliasRouting("live", 1, 2, 10), "beta": AliasRouting("beta", 3)}
    assert alias_summary(routing) == "beta=3 live=1,2@10%"
    assert alias_summary({}) == ""


def test_status_versions_lists_what_runs_or_takes_traffic_newest_first():
    entries = version_entries(
        [1, 2, 3],
        {2: {"replicas": 1, "readyReplicas": 1}},
        {"2": ["live 100%"], "$LATEST": ["trigger plain"]},
        latest_replicas={"replicas": 0, "readyReplicas": 0},
    )
    assert entries == [
        {"version": "$LATEST", "replicas": 0, "readyReplicas": 0, "trafficShare": "trigger plain"},
        {"version": "2", "replicas": 1, "readyReplicas": 1, "trafficShare": "live 100%"},
    ]


def test_an_alias_on_a_missing_version_makes_the_function_not_ready():
    condition = aliases_condition([LIVE], {1})
    assert condition is not None
    assert (condition.status, condition.reason) == ("False", "VersionNotPublished")
    assert "alias 'live' points at version 2" in condition.message
    assert "503" in condition.message
    assert aliases_condition([], {1}) is None
    ready = function_conditions(*(Condition(t, TRUE, "ok") for t in "ABCD"), condition)[0]
    assert (ready.status, ready.reason) == ("False", "VersionNotPublished")


def test_a_rollback_is_mirrored_but_does_not_make_the_function_not_ready():
    canaries = [{"name": "live", "phase": "RolledBack", "message": "p99 0.9s > 0.5s"}]
    condition = canary_condition(canaries)
    assert condition is not None
    assert (condition.status, condition.reason) == ("False", "RolledBack")
    assert condition.message == "alias 'live': p99 0.9s > 0.5s"
    ready = function_conditions(*(Condition(t, TRUE, "ok") for t in "ABCD"), condition)[0]
    assert ready.status == TRUE
    assert canary_condition([]) is None
    assert canary_condition([{"name": "live", "phase": "Promoted"}]).status == TRUE  # type: ignore[union-attr]


def test_version_conditions_not_recomputed_are_kept_and_none_removes_one():
    previous = [
        {"type": "AliasesValid", "status": "True", "reason": "Valid", "message": "m"},
        {"type": "CanaryHealthy", "status": "False", "reason": "RolledBack", "message": "x"},
    ]
    kept = version_conditions(previous, {})
    assert [c.type for c in kept] == ["AliasesValid", "CanaryHealthy"]
    assert version_conditions(previous, {"CanaryHealthy": None})[0].type == "AliasesValid"
    assert len(version_conditions(previous, {"CanaryHealthy": None})) == 1


def test_a_versions_children_carry_its_key_labels_and_number():
    spec = parse_function_spec({"handler": "index.handler", "code": {"inline": {"index.py": ""}}})
    config = OperatorConfig(runtime_image="rt:1")
    deployment = build_deployment(
        "hello-v2", "ns", spec, config, "sum", 2, version_of=VersionOf("hello", 2)
    )
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["hanshu.io/function"] == "hello-v2"
    assert (labels["hanshu.io/version-of"], labels["hanshu.io/version"]) == ("hello", "2")
    assert deployment["spec"]["selector"] == {"matchLabels": {"hanshu.io/function": "hello-v2"}}
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert (env["HANSHU_FUNCTION_NAME"], env["HANSHU_FUNCTION_VERSION"]) == ("hello", "2")
    assert build_service("hello-v2", "ns")["spec"]["selector"] == {"hanshu.io/function": "hello-v2"}
    plain = build_deployment("hello", "ns", spec, config, "sum", 7)
    assert "hanshu.io/version-of" not in plain["metadata"]["labels"]


def test_a_triggers_target_is_latest_a_version_or_an_alias():
    http = {"http": {"path": "/x"}}
    assert parse_trigger_spec({"functionRef": {"name": "f"}, **http}).target == FunctionTarget("f")
    on_version = parse_trigger_spec({"functionRef": {"name": "f", "version": 2}, **http})
    assert on_version.target == FunctionTarget("f", version=2)
    assert on_version.function_name == "f"
    on_alias = parse_trigger_spec({"functionRef": {"name": "f", "alias": "live"}, **http})
    assert str(on_alias.target) == "f:live"
