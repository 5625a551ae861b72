"""Durations written the Kubernetes / Knative way: '30s', '1m30s', '250ms', '2h'."""

from __future__ import annotations

import re

# The whole form, as the CRDs' duration fields check it (hack/gen_crds.py writes it there).
DURATION_PATTERN = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ``ValueError`` naming the expected form when it is not one."""
    if not DURATION_PATTERN.fullmatch(text):
        raise ValueError(f"{text!r} is not a duration; write e.g. '30s', '5m', '1m30s' or '250ms'")
    return sum(float(number) * _SECONDS[unit] for number, unit in _PART.findall(text))
