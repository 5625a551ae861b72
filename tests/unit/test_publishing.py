"""What the CLI decides when publishing and moving aliases, and what it shows."""

from __future__ import annotations

from typing import Any

import pytest
from hanshu_api.versions import spec_digest
from hanshu_cli import views
from hanshu_cli.errors import CliError
from hanshu_cli.publishing import (
    Published,
    parse_weight,
    published,
    rollback_alias,
    set_alias,
    unchanged_version,
    version_manifest,
)

FUNCTION: dict[str, Any] = {
    "metadata": {"name": "hello", "namespace": "ns", "uid": "u-1"},
    "spec": {
        "handler": "index.handler",
        "code": {"inline": {"index.py": ""}},
        "aliases": [{"name": "live", "version": 1}],
    },
}


def test_a_version_snapshots_the_spec_without_its_aliases_and_is_owned_by_the_function():
    manifest = version_manifest(FUNCTION, 3, "why")
    assert manifest["metadata"]["name"] == "hello-v3"
    assert manifest["metadata"]["labels"] == {
        "hanshu.io/version-of": "hello",
        "hanshu.io/version": "3",
    }
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert "aliases" not in manifest["spec"]["template"]
    assert manifest["spec"]["digest"] == spec_digest(manifest["spec"]["template"])
    assert manifest["spec"]["description"] == "why"
    assert FUNCTION["spec"]["aliases"]  # the Function's own spec is untouched


def test_an_unchanged_spec_returns_the_newest_version_only():
    digest = version_manifest(FUNCTION, 1)["spec"]["digest"]
    same = Published(2, digest, "", "", "", 0)
    other = Published(3, "0" * 64, "", "", "", 0)
    assert unchanged_version(FUNCTION, [same]) == 2
    assert unchanged_version(FUNCTION, [same, other]) is None  # reverted: a new version
    assert unchanged_version(FUNCTION, []) is None


def test_versions_of_other_functions_are_left_out_and_sorted():
    items = [
        {"spec": {"function": "hello", "version": 2, "digest": "b"}, "metadata": {}},
        {"spec": {"function": "other", "version": 1, "digest": "c"}, "metadata": {}},
        {"spec": {"function": "hello", "version": 1, "digest": "a"}, "metadata": {}},
    ]
    assert [v.number for v in published(items, "hello")] == [1, 2]


@pytest.mark.parametrize(
    ("weight", "complaint"),
    [
        ((2, 100), "1-99%"),
        ((2, 0), "1-99%"),
        ((1, 10), "names version 1 itself"),
        ((5, 10), "version 5 is not published (published: 1, 2)"),
    ],
)
def test_bad_splits_are_refused(weight: tuple[int, int], complaint: str):
    with pytest.raises(CliError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        set_alias([], "live", 1, weight, {1, 2})


def test_alias_set_replaces_the_alias_and_keeps_the_others():
    current = [
        {"name": "live", "version": 1, "canary": {"steps": [10]}},
        {"name": "beta", "version": 2},
    ]
    updated = set_alias(current, "live", 2, (1, 25), {1, 2})
    assert updated == [
        {"name": "beta", "version": 2},
        {"name": "live", "version": 2, "additionalVersion": 1, "additionalWeight": 25},
    ]
    with pytest.raises(CliError, match="version 3 is not published"):
        set_alias(current, "live", 3, None, {1, 2})


def test_weights_are_read_as_version_equals_percent():
    assert parse_weight("2=10%") == (2, 10)
    assert parse_weight("2=10") == (2, 10)
    with pytest.raises(CliError, match="VERSION=PERCENT%"):
        parse_weight("10%")


def test_rollback_drops_the_additional_version_and_the_canary():
    current = [
        {"name": "live", "version": 1, "additionalVersion": 2, "canary": {"steps": [10, 100]}},
        {"name": "beta", "version": 2},
    ]
    assert rollback_alias(current, "live") == [
        {"name": "live", "version": 1},
        {"name": "beta", "version": 2},
    ]
    with pytest.raises(CliError, match="nothing to roll back"):
        rollback_alias(current, "beta")
    with pytest.raises(CliError, match="no alias 'gamma'"):
        rollback_alias(current, "gamma")


def test_the_alias_table_shows_the_effective_routes_and_canaries():
    function = {
        "spec": {
            "aliases": [
                {
                    "name": "live",
                    "version": 1,
                    "additionalVersion": 2,
                    "canary": {"steps": [10, 100]},
                },
                {"name": "beta", "version": 2},
            ]
        },
        "status": {
            "aliasSummary": "beta=2 live=1,2@10%",
            "canaries": [{"name": "live", "phase": "Progressing", "message": "step 1 of 2"}],
        },
    }
    assert views.alias_rows(function) == [
        ["live", "version 1 90%, version 2 10%", "Progressing: step 1 of 2"],
        ["beta", "version 2", "-"],
    ]
