"""The gateway's pure parts of versions and aliases: reading the objects, the per-alias
choice, sticky values, the internal port's target, the record's version field."""

from __future__ import annotations

import pytest
from hanshu_api.invocation_record import InvocationRecord, Origin, RecordInvalid
from hanshu_api.invocations import InvocationHeaders, StoredPolicy, StoredRequest
from hanshu_api.versions import STICKY_COOKIE, STICKY_HEADER, AliasRouting, parse_aliases
from hanshu_gateway.faults import BadRequest
from hanshu_gateway.version_routing import AliasChoice, platform_target, sticky_cookie
from hanshu_gateway.versions_seam import function_routing, parse_function_version


def test_a_split_alias_picks_by_the_sticky_value_and_an_unsplit_one_never_draws() -> None:
    split = AliasChoice.of("ns", "shop", AliasRouting("live", 1, 2, 50))
    assert split.keys == {1: ("ns", "shop-v1"), 2: ("ns", "shop-v2")}
    picks = {split.pick({STICKY_HEADER: f"user-{n}"}) for n in range(50)}
    assert picks == {1, 2}
    for n in range(50):
        by_header = split.pick({STICKY_HEADER: f"user-{n}"})
        assert split.pick({"Cookie": f"{STICKY_COOKIE}=user-{n}"}) == by_header
        assert split.pick({STICKY_HEADER: f"user-{n}"}) == by_header
    whole = AliasChoice.of("ns", "shop", AliasRouting("live", 3))
    assert not whole.split
    assert whole.keys == {3: ("ns", "shop-v3")}
    assert {whole.pick({}) for _ in range(20)} == {3}


def test_sticky_cookie_reads_only_its_own_cookie() -> None:
    assert sticky_cookie(None) is None
    assert sticky_cookie("a=b") is None
    assert sticky_cookie(f"a=b; {STICKY_COOKIE}=u1; c=d") == "u1"
    assert sticky_cookie(f'{STICKY_COOKIE}="quoted"') == "quoted"
    assert sticky_cookie(f"x{STICKY_COOKIE}=u1") is None  # another cookie's name
    assert sticky_cookie(f"{STICKY_COOKIE}=") is None


def test_the_internal_port_takes_a_version_or_an_alias() -> None:
    assert platform_target({}) == (None, None)
    assert platform_target({"version": "3"}) == (3, None)
    assert platform_target({"alias": "live"}) == (None, "live")
    for bad in (
        {"version": "0"},
        {"version": "x"},
        {"version": "1", "alias": "live"},
        {"version": "\u00b2"},  # '²' is a digit to str.isdigit(), not to int()
        {"version": "9" * 5000},  # past int()'s digit limit
    ):
        with pytest.raises(BadRequest):
            platform_target(bad)


def test_function_versions_and_aliases_from_the_raw_objects() -> None:
    published = parse_function_version(
        {
            "metadata": {"namespace": "ns", "name": "shop-v2"},
            "spec": {"function": "shop", "version": 2, "template": {"handler": "a.b"}},
        }
    )
    assert published is not None
    assert (published.namespace, published.function, published.version) == ("ns", "shop", 2)
    assert parse_function_version({"metadata": {}, "spec": {"function": "shop"}}) is None
    function = {
        "metadata": {"namespace": "ns", "name": "shop"},
        "spec": {
            "aliases": [
                {"name": "live", "version": 1, "additionalVersion": 2, "additionalWeight": 10},
                {"name": "beta", "version": 2},
                {"name": "Bad Name", "version": 1},  # left out
            ]
        },
        # A canary's entry for live (same versions): it wins over the spec's weight.
        "status": {
            "aliases": [
                {"name": "live", "version": 1, "additionalVersion": 2, "additionalWeight": 50}
            ]
        },
    }
    problems: list[str] = []
    aliases = parse_aliases(function["spec"]["aliases"], problems)
    assert len(problems) == 1  # the bad name: left out, the others route
    routing = function_routing(aliases, function)
    assert routing == {
        "live": AliasRouting("live", 1, 2, 50),
        "beta": AliasRouting("beta", 2),
    }
    assert function_routing((), {"spec": {}}) == {}


def test_the_record_and_the_message_carry_the_version_only_when_set() -> None:
    latest = InvocationRecord.new("abc", Origin("ns", "shop"), "Async", 0.0)
    assert "version" not in latest.encode()
    on_two = InvocationRecord.new("abc", Origin("ns", "shop", version=2), "Async", 0.0)
    assert on_two.encode()["version"] == 2
    assert InvocationRecord.parse(on_two.dumps()).origin.version == 2
    with pytest.raises(RecordInvalid, match="version must be a version number"):
        InvocationRecord.parse({**on_two.encode(), "version": "2"})
    headers = InvocationHeaders(
        "abc",
        "Async",
        0.0,
        StoredPolicy(1, 60.0, 30.0, None, None),
        StoredRequest("POST", "/"),
        Origin("ns", "shop", version=2),
    ).to_headers()
    assert InvocationHeaders.from_headers(headers).origin.version == 2


@pytest.mark.parametrize("weight", [10, 33, 50, 90])
def test_any_run_of_consecutive_requests_is_split_by_the_weights_not_by_chance(
    weight: int,
) -> None:
    # Independent random draws would split a burst of ten 50/50 requests 7/3 or worse one
    # time in three; the alias's sequence keeps every run within a request or two of the
    # weight, the 2,000 of the integration test as much as each burst of ten.
    split = AliasChoice.of("ns", "shop", AliasRouting("live", 1, 2, weight))
    to_second = [split.pick({}) == 2 for _ in range(2_000)]
    for size, slack in ((10, 1.5), (100, 2), (2_000, 3)):
        for start in range(len(to_second) - size + 1):
            share = sum(to_second[start : start + size])
            assert abs(share - size * weight / 100) <= slack, (size, start, share)
    # Two aliases built alike (two gateway replicas) start at their own random points.
    other = AliasChoice.of("ns", "shop", AliasRouting("live", 1, 2, weight))
    assert other.last_draw != AliasChoice.of("ns", "shop", other.routing).last_draw
