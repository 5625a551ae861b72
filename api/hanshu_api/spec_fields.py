"""What every spec parser shares: the error that lists every problem, and the integer and
duration fields whose bounds and defaults the CRDs are generated from (hack/gen_crds.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .durations import parse_duration

# A Kubernetes DNS label: a Function's name (it names its Service) and what refers to one.
DNS_LABEL_PATTERN = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_LABEL_MAX_LENGTH = 63


class SpecInvalid(ValueError):
    """The spec cannot work; ``problems`` says every reason, each naming the field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class IntField:
    """An integer field's name, bounds and default: the parser checks them, and the CRD's
    minimum, maximum and default are written from them."""

    key: str
    minimum: int
    maximum: int | None = None
    default: int | None = None


def integer(raw: Mapping[str, Any], spec: IntField, where: str, problems: list[str]) -> int:
    """The field's value, or (with a problem noted when it is given but wrong) its default."""
    fallback = spec.default if spec.default is not None else spec.minimum
    value = raw.get(spec.key, fallback)
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"{where}{spec.key} must be an integer, got {value!r}")
        return fallback
    if value < spec.minimum or (spec.maximum is not None and value > spec.maximum):
        bound = (
            f"from {spec.minimum} to {spec.maximum}"
            if spec.maximum is not None
            else f"at least {spec.minimum}"
        )
        problems.append(f"{where}{spec.key} must be {bound}, got {value}")
        return fallback
    return value


def duration(
    raw: Mapping[str, Any], key: str, default: str, where: str, problems: list[str]
) -> float:
    """Seconds in the duration field ``key`` (e.g. '30s'), or the default's."""
    try:
        return parse_duration(str(raw.get(key, default)))
    except ValueError as error:
        problems.append(f"{where}{key}: {error}")
        return parse_duration(default)
