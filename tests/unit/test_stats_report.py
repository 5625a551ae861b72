"""The stats report between the gateway (or dispatcher) and the autoscaler: what one side
encodes the other parses back, and a malformed report is refused naming its field."""

from __future__ import annotations

import json

import pytest
from hanshu_api.stats_report import ColdRequest, FunctionStat, StatsInvalid, StatsReport


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
    ],
)
def test_a_malformed_report_names_its_field(report: object, named: str) -> None:
    with pytest.raises(StatsInvalid, match=named.replace("[", r"\[").replace("]", r"\]")):
        StatsReport.parse(report)
