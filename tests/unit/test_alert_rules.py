"""The alert rules the chart ships (charts/hanshu/files/alerts/hanshu-rules.yaml): valid for
Prometheus (`promtool check rules`), each proven by `promtool test rules` against series in
and alerts out (tests/alerts/hanshu-rules-test.yaml), each firing and each kept quiet; and
each readable by whoever is paged: a summary, a description naming the Function, a runbook
section that exists, and only metrics the components really export."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.tools import ToolUnavailable, promtool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "charts" / "hanshu" / "files" / "alerts" / "hanshu-rules.yaml"
RULE_TESTS = ROOT / "tests" / "alerts" / "hanshu-rules-test.yaml"
TROUBLESHOOTING = ROOT / "docs" / "troubleshooting.md"
RUNBOOKS = "https://github.com/hanshu-io/hanshu/blob/main/docs/troubleshooting.md#"
COMPONENT_SOURCES = ("gateway", "dispatcher", "operator", "runtime", "autoscaler", "api")
# Series no Hanshu code names: Prometheus' own and prometheus_client's process collector.
NOT_OURS = {"up", "process_resident_memory_bytes"}
# Labels a rule may group by, and who gives them: the metrics' own, or the scrape's.
SCRAPE_LABELS = {"instance", "job"}


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _promtool() -> Path:
    try:
        return promtool()
    except ToolUnavailable as missing:
        pytest.skip(str(missing))


def test_promtool_finds_the_rule_file_valid() -> None:
    checked = subprocess.run(
        [str(_promtool()), "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in checked.stdout


def test_promtool_unit_tests_pass() -> None:
    tested = subprocess.run(
        [str(_promtool()), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - firing == set(), "alerts no test sees fire"
    assert names - quiet == set(), "alerts no test sees stay quiet"


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a document's headings."""
    return {
        re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    }


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: rule["alert"])
def test_every_alert_says_what_and_links_its_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in ("warning", "critical")
    annotations = rule["annotations"]
    assert annotations["summary"]
    assert annotations["description"]
    grouped = set(re.findall(r"by \(([^)]*)\)", rule["expr"]))
    labels = {label.strip() for group in grouped for label in group.split(",")} - {"le"}
    if "function" in labels:  # a Function's alert names it (the summary, maybe its route)
        assert "{{ $labels.function }}" in annotations["description"]
        assert re.search(r"\{\{ \$labels\.(function|trigger) \}\}", annotations["summary"])
    runbook = annotations["runbook_url"]
    assert runbook.startswith(RUNBOOKS)
    assert runbook.removeprefix(RUNBOOKS) in _anchors(TROUBLESHOOTING.read_text())


def _exported_names() -> str:
    return "\n".join(
        path.read_text()
        for folder in COMPONENT_SOURCES
        for path in (ROOT / folder).rglob("*.py")
        if "tests" not in path.parts
    )


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: rule["alert"])
def test_every_alert_reads_metrics_a_component_exports(rule: dict[str, Any]) -> None:
    sources = _exported_names()
    # PromQL words that are not series: functions, keywords, label names, durations.
    words = set(re.findall(r"\b([a-z_][a-z0-9_]*)\b\s*(?:\{|\[|\)|$| /| ==| >)", rule["expr"]))
    series = {w for w in words if w.startswith(("hanshu_", "process_")) or w == "up"}
    assert series, rule["expr"]
    for name in series - NOT_OURS:
        # What prometheus_client adds to the name a component registers.
        base = re.sub(r"_(total|bucket|count|sum)$", "", name)
        assert f'"{base}"' in sources, f"{name}: no component exports {base}"
