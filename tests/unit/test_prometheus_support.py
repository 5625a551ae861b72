"""The dashboard test's readers (tests/support/prometheus.py): Grafana variables made
concrete, panels found, rule files read; each bad input named."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.prometheus import concrete, dashboard_panels, rules_in, scrape_config

SAMPLE_RULES = Path(__file__).resolve().parents[1] / "support" / "sample_rules.yaml"


def test_grafana_variables_become_their_values_in_both_spellings():
    expression = 'rate(x{namespace=~"$namespace", function=~"${function}"}[$__rate_interval])'
    values = {"namespace": "default", "function": "shop", "__rate_interval": "2000ms"}
    assert concrete(expression, values) == (
        'rate(x{namespace=~"default", function=~"shop"}[2000ms])'
    )


def test_a_variable_without_a_value_is_named():
    with pytest.raises(KeyError, match=r"\$version"):
        concrete('x{version="$version"}', {"namespace": "default"})


def test_panels_are_found_in_rows_too_and_panels_without_queries_are_left_out():
    dashboard = {
        "panels": [
            {"title": "text", "type": "text"},
            {"title": "a", "targets": [{"expr": "up", "legendFormat": "{{job}}"}]},
            {
                "title": "row",
                "type": "row",
                "panels": [{"title": "b", "targets": [{"expr": "x"}, {"expr": ""}]}],
            },
        ]
    }
    found = dashboard_panels(dashboard)
    assert [(p.title, p.targets) for p in found] == [
        ("a", [("{{job}}", "up")]),
        ("b", [("", "x")]),
    ]


def test_a_rule_file_and_a_prometheus_rule_are_both_read(tmp_path: Path):
    assert [r.name for r in rules_in(SAMPLE_RULES)] == [
        "hanshu:gateway_invocations:rate1m",
        "HanshuSampleFunctionErrors",
    ]
    operator_form = tmp_path / "rule.yaml"
    operator_form.write_text(
        "kind: PrometheusRule\n"
        "spec:\n  groups:\n  - name: g\n    rules:\n    - alert: Down\n      expr: up == 0\n"
    )
    assert [(r.name, r.expression) for r in rules_in(operator_form)] == [("Down", "up == 0")]


def test_a_file_that_holds_no_rules_is_refused_saying_what_was_expected(tmp_path: Path):
    other = tmp_path / "values.yaml"
    other.write_text("replicas: 2\n")
    with pytest.raises(ValueError, match="groups: at the top"):
        rules_in(other)
    nameless = tmp_path / "nameless.yaml"
    nameless.write_text("groups:\n- name: g\n  rules:\n  - expr: up\n")
    with pytest.raises(ValueError, match="needs alert or record"):
        rules_in(nameless)


def test_the_scrape_configuration_lists_each_job_with_a_one_second_interval():
    config = scrape_config({"hanshu": ["127.0.0.1:9000"]})
    assert config["scrape_configs"] == [
        {
            "job_name": "hanshu",
            "scrape_interval": "1s",
            "scrape_timeout": "1s",
            "static_configs": [{"targets": ["127.0.0.1:9000"]}],
        }
    ]
