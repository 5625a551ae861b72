"""hanshu_api: spec models, durations, quantities, cron, conditions."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest
from hanshu_api.cron import CronError, parse_cron
from hanshu_api.durations import parse_duration
from hanshu_api.kube import path_for
from hanshu_api.models import SpecInvalid, parse_function_spec, parse_trigger_spec
from hanshu_api.quantities import parse_quantity
from hanshu_operator.conditions import (
    FALSE,
    TRUE,
    UNKNOWN,
    Condition,
    merge_conditions,
    summarize,
)

UTC = datetime.UTC


def test_durations():
    assert parse_duration("30s") == 30
    assert parse_duration("1m30s") == 90
    assert parse_duration("250ms") == 0.25
    assert parse_duration("2h") == 7200
    for bad in ("", "30", "s", "1d", "30s ", "-1s"):
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(bad)


def test_quantities():
    assert parse_quantity("128Mi") == 128 * 2**20
    assert parse_quantity("1G") == 1e9
    assert parse_quantity("500m") == 0.5
    assert parse_quantity(2) == 2
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity("lots")


def test_function_spec_defaults_and_memory():
    spec = parse_function_spec(
        {
            "handler": "index.handler",
            "code": {"inline": {"index.py": ""}},
            "resources": {"limits": {"memory": "512Mi"}},
        }
    )
    assert spec.memory_mb == 512
    assert spec.scaling.scale_to_zero_grace_seconds == 30
    assert parse_function_spec({"handler": "a:app", "code": {"image": "x"}}).memory_mb == 256


def test_function_spec_collects_every_problem():
    with pytest.raises(SpecInvalid) as caught:
        parse_function_spec(
            {
                "handler": "main.handler",
                "initializer": "boot.init",
                "code": {"inline": {"index.py": ""}},
                "scaling": {"minReplicas": 3, "maxReplicas": 1, "scaleDownDelay": "soon"},
                "resources": {"limits": {"memory": "a lot"}},
                "env": [{"name": "HANSHU_X", "value": "1"}],
            }
        )
    text = str(caught.value)
    assert "spec.handler 'main.handler' needs main.py in spec.code.inline (it has index.py)" in text
    assert "spec.initializer 'boot.init' needs boot.py" in text
    assert "spec.scaling.scaleDownDelay: 'soon' is not a duration" in text
    assert (
        "spec.scaling.minReplicas (3) must not be greater than spec.scaling.maxReplicas (1)" in text
    )
    assert "spec.resources.limits.memory" in text
    assert "names starting with HANSHU_ are reserved" in text
    assert len(caught.value.problems) == 6


def test_trigger_spec():
    trigger = parse_trigger_spec(
        {
            "functionRef": {"name": "f"},
            "http": {
                "host": "API.example.com",
                "path": "/v1",
                "methods": ["get"],
                "auth": {"apiKeySecretRef": {"name": "keys"}},
                "rateLimit": {"requestsPerSecond": 5},
            },
        }
    )
    assert trigger.source_type == "http"
    assert trigger.http is not None
    assert trigger.http.host == "api.example.com"
    assert trigger.http.methods == ("GET",)
    assert trigger.http.auth is not None
    assert (trigger.http.auth.secret_key, trigger.http.auth.header) == ("api-key", "X-API-Key")
    assert trigger.http.rate_limit is not None
    assert trigger.http.rate_limit.burst == 5
    with pytest.raises(SpecInvalid, match="can only call a Function in its own namespace"):
        parse_trigger_spec({"functionRef": {"name": "f", "namespace": "other"}, "http": {}}, "mine")


def test_cron_next_fire_times():
    start = datetime.datetime(2026, 3, 7, 12, 0, tzinfo=UTC)  # a Saturday
    assert parse_cron("*/15 * * * *").next_after(start, "UTC") == start.replace(minute=15)
    assert parse_cron("0 9 * * MON-FRI").next_after(start, "UTC") == datetime.datetime(
        2026, 3, 9, 9, 0, tzinfo=UTC
    )
    assert parse_cron("@daily").next_after(start, "Asia/Shanghai") == datetime.datetime(
        2026, 3, 7, 16, 0, tzinfo=UTC
    )
    # Both day fields restricted: either one matches (vixie cron).
    assert parse_cron("0 0 10 * FRI").next_after(start, "UTC") == datetime.datetime(
        2026, 3, 10, 0, 0, tzinfo=UTC
    )  # Tuesday the 10th, before Friday the 13th


def test_cron_skips_a_wall_time_that_dst_removes():
    # 2026-03-08 02:30 does not exist in New York (clocks jump 02:00 -> 03:00).
    start = datetime.datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST
    fire = parse_cron("30 2 * * *").next_after(start, "America/New_York")
    assert fire == datetime.datetime(2026, 3, 9, 6, 30, tzinfo=UTC)  # 02:30 EDT the next day


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("* * * *", "has 4 fields"),
        ("60 * * * *", "minute field: '60' is outside 0-59"),
        ("* * * FOO *", "month field: 'FOO' is not a number"),
        ("*/0 * * * *", "step '0' must be a positive number"),
        ("0 0 30 2 *", "never fires"),
        ("@midnight", "has 1 fields"),  # the CRD never admitted it (issue 25)
        ("@DAILY", "has 1 fields"),
        (" @daily", "starts or ends with a space"),
        ("0\t0 * * *", "has 4 fields"),
        ("\u0663 * * * *", "minute field: '\u0663' is not a number"),  # an Arabic-Indic 3
    ],
)
def test_bad_crons(expression: str, fragment: str):
    with pytest.raises(CronError, match=fragment):
        parse_cron(expression).next_after(datetime.datetime(2026, 1, 1, tzinfo=UTC), "UTC")


def test_ready_summarises_and_transition_time_moves_only_on_flips():
    ok = [Condition("A", TRUE, "Fine"), Condition("B", TRUE, "Fine")]
    assert summarize(ok, "Ready", "all good") == Condition("Ready", TRUE, "Ready", "all good")
    assert (
        summarize(
            [Condition("A", UNKNOWN, "Wait"), Condition("B", FALSE, "Bad", "fix")], "Ready", ""
        ).reason
        == "Bad"
    )
    first = merge_conditions(None, [Condition("A", TRUE, "Fine")], 1, "t1")
    same = merge_conditions(first, [Condition("A", TRUE, "StillFine", "new words")], 2, "t2")
    assert same[0]["lastTransitionTime"] == "t1"
    assert same[0]["observedGeneration"] == 2
    flipped = merge_conditions(same, [Condition("A", FALSE, "Broke")], 2, "t3")
    assert flipped[0]["lastTransitionTime"] == "t3"


def test_api_paths():
    assert path_for("v1", "configmaps", "ns", "x") == "/api/v1/namespaces/ns/configmaps/x"
    assert path_for("apps/v1", "deployments", "ns", "f", "scale") == (
        "/apis/apps/v1/namespaces/ns/deployments/f/scale"
    )
    assert path_for("hanshu.io/v1alpha1", "functions") == "/apis/hanshu.io/v1alpha1/functions"


def fires(expression: str, start: datetime.datetime, count: int, zone: str) -> list[str]:
    cron, found = parse_cron(expression), []
    for _ in range(count):
        start = cron.next_after(start, zone)
        found.append(start.astimezone(zoneinfo.ZoneInfo(zone)).strftime("%d %H:%M %Z"))
    return found


def test_cron_on_a_fall_back_night_repeats_wildcard_jobs_and_runs_fixed_times_once():
    # New York repeats 01:00-01:59 on 2026-11-01 (EDT, then EST): vixie cron's rule.
    before = datetime.datetime(2026, 11, 1, 4, 50, tzinfo=UTC)  # 00:50 EDT
    assert fires("*/30 * * * *", before, 5, "America/New_York") == [
        "01 01:00 EDT", "01 01:30 EDT", "01 01:00 EST", "01 01:30 EST", "01 02:00 EST",
    ]  # fmt: skip
    # A fixed time runs once that night; the next fire is the next day's.
    assert fires("30 1 * * *", before, 2, "America/New_York") == ["01 01:30 EDT", "02 01:30 EST"]
    # From inside the repeated hour's second pass, the next fire is in that pass.
    inside = datetime.datetime(2026, 11, 1, 6, 10, tzinfo=UTC)  # 01:10 EST
    assert fires("*/15 * * * *", inside, 1, "America/New_York") == ["01 01:15 EST"]
