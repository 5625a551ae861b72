"""The versions and aliases contract: names, snapshots, alias validation, routing."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hanshu_api import versions
from hanshu_api.versions import Alias, AliasRouting


def test_version_names_are_dns_labels_even_for_long_function_names() -> None:
    assert versions.version_object_name("hello", 3) == "hello-v3"
    long_a, long_b = "a" * 60 + "x", "a" * 60 + "y"
    name_a, name_b = (versions.version_object_name(n, 12) for n in (long_a, long_b))
    assert len(name_a) <= 63
    assert name_a.endswith("-v12")
    assert name_a != name_b
    assert versions.version_key("hello", None) == "hello"


def test_moving_an_alias_is_not_a_new_snapshot() -> None:
    spec = {"handler": "index.handler", "code": {"inline": {"index.py": "x"}}}
    moved = {**spec, "aliases": [{"name": "live", "version": 1}]}
    assert versions.spec_digest(spec) == versions.spec_digest(moved)
    assert versions.spec_digest(spec) != versions.spec_digest({**spec, "timeoutSeconds": 5})


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ([{"name": "Live", "version": 1}], "DNS label"),
        ([{"name": "live"}], "version is required"),
        ([{"name": "live", "version": 0}], "version number"),
        ([{"name": "live", "version": 1, "additionalVersion": 1, "additionalWeight": 5}], "equals"),
        ([{"name": "live", "version": 1, "additionalVersion": 2}], "additionalWeight"),
        (
            [{"name": "live", "version": 1, "additionalVersion": 2, "additionalWeight": 100}],
            "1 to 99",
        ),
        ([{"name": "live", "version": 1, "additionalWeight": 10}], "need additionalVersion"),
        ([{"name": "a", "version": 1}, {"name": "a", "version": 2}], "used twice"),
        (
            [{"name": "a", "version": 1, "additionalVersion": 2, "canary": {"steps": [50, 10]}}],
            "rise",
        ),
    ],
)
def test_a_bad_alias_is_refused_naming_what_is_wrong(raw: Any, complaint: str) -> None:
    problems: list[str] = []
    versions.parse_aliases(raw, problems)
    assert any(complaint in problem for problem in problems), problems


def test_an_alias_on_a_missing_version_is_named() -> None:
    alias = Alias("live", 3, 4, 10)
    assert versions.missing_versions([alias], {1, 2, 3}) == [
        "alias 'live' points at version 4, which is not published (published: 1, 2, 3)"
    ]


def test_a_canary_starts_at_its_first_step() -> None:
    problems: list[str] = []
    (alias,) = versions.parse_aliases(
        [
            {
                "name": "live",
                "version": 1,
                "additionalVersion": 2,
                "canary": {"steps": [10, 50, 100], "interval": "1m", "maxP99Latency": "500ms"},
            }
        ],
        problems,
    )
    assert problems == []
    assert alias.additional_weight == 10
    assert alias.canary is not None
    assert alias.canary.max_p99_seconds == 0.5


def test_split_follows_the_weight_and_sticky_values_stay_put() -> None:
    routing = AliasRouting("live", 1, 2, 20)
    rng = random.Random(7)
    picks = [versions.pick_version(routing, rng.random()) for _ in range(10_000)]
    assert 1800 < picks.count(2) < 2200
    sticky = [versions.pick_version(routing, versions.sticky_draw("user-42", "live")) for _ in "ab"]
    assert sticky[0] == sticky[1]


def test_a_rolled_back_status_overrides_the_spec_split() -> None:
    alias = Alias("live", 1, 2, 50)
    rolled_back = [{"name": "live", "version": 1}]
    assert versions.effective_routing([alias], rolled_back)["live"] == AliasRouting("live", 1)
    # A status about other versions (the spec moved on) no longer holds.
    stale = [{"name": "live", "version": 7}]
    assert versions.effective_routing([alias], stale)["live"] == AliasRouting("live", 1, 2, 50)


def test_a_trigger_names_a_version_or_an_alias_not_both() -> None:
    problems: list[str] = []
    versions.parse_function_target("hello", {"name": "hello", "version": 2, "alias": "x"}, problems)
    assert problems == ["spec.functionRef takes version or alias, not both"]
    target = versions.parse_function_target("hello", {"name": "hello", "alias": "live"}, [])
    assert str(target) == "hello:live"


def test_no_function_name_can_be_a_versions_name() -> None:
    assert versions.function_name_problem("api") is None
    assert versions.function_name_problem("api-v") is None
    assert versions.function_name_problem("v2-api") is None
    problem = versions.function_name_problem("api-v2")
    assert problem is not None
    assert "'api'" in problem  # says what would be right
    long_name = "a" * 63
    assert versions.function_name_problem(versions.version_object_name(long_name, 7))
