"""What each Function cost, from the gateway's counters: invocations, errors, cold starts
and GB-seconds (the unit Function Compute and Lambda bill by). Pure functions of the
Prometheus text the gateway serves, or of a Prometheus server's query answers.

Split by version (issue 28): a row per (namespace, function, version), the version
``LATEST`` for $LATEST and for series of gateways older than the ``version`` label."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# (namespace, function, version)
UsageKey = tuple[str, str, str]
LATEST = "LATEST"  # hanshu_api.versions.VERSION_LABEL_LATEST


@dataclass
class Usage:
    invocations: float = 0.0
    errors: float = 0.0
    cold_starts: float = 0.0
    gb_seconds: float = 0.0


def _is_error(code: str) -> bool:
    return code.isdigit() and int(code) >= 500


def _key(labels: Mapping[str, Any]) -> UsageKey:
    return (
        str(labels.get("namespace", "")),
        str(labels["function"]),
        str(labels.get("version") or LATEST),
    )


def from_metrics(texts: Iterable[str]) -> dict[UsageKey, Usage]:
    """The sum over gateway replicas of their counters (each since that replica started)."""
    found: dict[UsageKey, Usage] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                labels = sample.labels
                if "function" not in labels:
                    continue
                usage = found.setdefault(_key(labels), Usage())
                if sample.name == "hanshu_gateway_invocations_total":
                    usage.invocations += sample.value
                    if _is_error(labels.get("code", "")):
                        usage.errors += sample.value
                elif sample.name == "hanshu_gateway_cold_starts_total":
                    usage.cold_starts += sample.value
                elif sample.name == "hanshu_gateway_gb_seconds_total":
                    usage.gb_seconds += sample.value
    return found


def prometheus_queries(window: str) -> dict[str, str]:
    """One query per column, each the increase over ``window`` per namespace, function
    and version."""
    by = "sum by (namespace, function, version)"
    return {
        "invocations": f"{by} (increase(hanshu_gateway_invocations_total[{window}]))",
        "errors": f'{by} (increase(hanshu_gateway_invocations_total{{code=~"5.."}}[{window}]))',
        "cold_starts": f"{by} (increase(hanshu_gateway_cold_starts_total[{window}]))",
        "gb_seconds": f"{by} (increase(hanshu_gateway_gb_seconds_total[{window}]))",
    }


def from_prometheus(answers: Mapping[str, Mapping[str, Any]]) -> dict[UsageKey, Usage]:
    """Query answers (``/api/v1/query`` JSON, by column) to usage per Function version."""
    found: dict[UsageKey, Usage] = {}
    for column, answer in answers.items():
        for series in (answer.get("data") or {}).get("result") or []:
            metric = series.get("metric") or {}
            if "function" not in metric:
                continue
            value = float(series.get("value", [0, "0"])[1])
            setattr(found.setdefault(_key(metric), Usage()), column, value)
    return found
