"""The stats report between the gateway (or dispatcher) and the autoscaler: what one side
encodes the other parses back, and a malformed report is refused naming its field."""

from __future__ import annotations

import json
import re

import pytest
from hanshu_api.stats_report import (
    LATENCY_BUCKETS,
    ColdRequest,
    FunctionStat,
    Outcomes,
    StatsInvalid,
    StatsReport,
)


def test_a_report_survives_the_wire() -> None:
    report = StatsReport(
        "gw-1",
        1767000000.5,
        (FunctionStat("shop", "checkout", 2, 1, 5, None), FunctionStat("a", "b", idle_for=3.5)),
        (ColdRequest("shop", "checkout", 1767000000.0),),
    )
    wire = json.loads(json.dumps(report.encode()))
    assert wire["functions"][0] == {
        "namespace": "shop",
        "name": "checkout",
        "inFlight": 2,
        "queued": 1,
        "arrivals": 5,
        "idleFor": None,
    }
    assert StatsReport.parse(wire) == report


@pytest.mark.parametrize(
    ("report", "named"),
    [
        ([], "the report must be a JSON object"),
        ({"functions": []}, "the report.gateway"),
        ({"gateway": "g", "functions": {}}, "functions must be a list"),
        ({"gateway": "g", "functions": ["x"]}, "functions[0] must be a JSON object"),
        ({"gateway": "g", "functions": [{"name": "f"}]}, "functions[0].namespace"),
        (
            {"gateway": "g", "functions": [{"namespace": "n", "name": "f", "queued": -1}]},
            "functions[0].queued",
        ),
        (
            {"gateway": "g", "functions": [{"namespace": "n", "name": "f", "idleFor": "1s"}]},
            "functions[0].idleFor",
        ),
        ({"gateway": "g", "cold": [{"namespace": "n", "name": "f", "since": "x"}]}, "cold[0]"),
        ({"gateway": "g", "sentAt": float("nan")}, "sentAt"),
        (
            {
                "gateway": "g",
                "functions": [
                    {"namespace": "n", "name": "f", "outcomes": {"requests": 1, "errors": 2}}
                ],
            },
            "functions[0].outcomes.errors (2) must not exceed requests (1)",
        ),
        (
            {
                "gateway": "g",
                "functions": [
                    {"namespace": "n", "name": "f", "outcomes": {"requests": 1, "latency": [1]}}
                ],
            },
            "functions[0].outcomes.latency must be 14 whole counts",
        ),
    ],
)
def test_a_malformed_report_names_its_field(report: object, named: str) -> None:
    with pytest.raises(StatsInvalid, match=re.escape(named)):
        StatsReport.parse(report)


def test_outcomes_travel_per_key_and_an_old_report_still_parses() -> None:
    """Versions are keys of their own; a reporter without outcomes (older, or one whose
    requests are all still in flight) sends none and is read as none."""
    canary = Outcomes.of([(0.02, False), (0.04, True), (0.3, False)])
    report = StatsReport(
        "gw-1",
        1.0,
        (FunctionStat("shop", "checkout"), FunctionStat("shop", "checkout-v2", outcomes=canary)),
    )
    wire = json.loads(json.dumps(report.encode()))
    assert "outcomes" not in wire["functions"][0]
    assert wire["functions"][1]["outcomes"]["requests"] == 3
    assert wire["functions"][1]["outcomes"]["errors"] == 1
    assert StatsReport.parse(wire) == report
    old = {"gateway": "g", "functions": [{"namespace": "n", "name": "f", "arrivals": 2}]}
    assert StatsReport.parse(old).functions[0].outcomes is None


def test_windows_add_up_bucket_by_bucket_into_one_p99() -> None:
    """Two gateways' windows (or several seconds') sum into the histogram of the whole,
    whose p99 is what neither window's own p99 would say."""
    fast = Outcomes.of([(0.004, False)] * 95)
    slow = Outcomes.of([(0.45, False)] * 5)
    both = fast + slow
    assert (both.requests, both.errors) == (100, 0)
    p99 = both.quantile(0.99)
    assert p99 is not None
    assert 0.3 < p99 <= 0.5  # inside the bucket the slow requests fell in
    fast_p99 = fast.quantile(0.99)
    assert fast_p99 is not None
    assert fast_p99 <= LATENCY_BUCKETS[0]
    assert Outcomes().quantile(0.99) is None
    overflow = Outcomes.of([(60.0, True)])
    assert overflow.quantile(0.99) == LATENCY_BUCKETS[-1]
    assert overflow.error_rate == 1.0
