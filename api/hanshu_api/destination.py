"""Where an async invocation's outcome (or a stream's failed records) goes: a Function, a
URL or a NATS subject. Functions (spec.async.destinations) and stream Triggers
(spec.stream.onFailure) share it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .spec_fields import DNS_LABEL_MAX_LENGTH, DNS_LABEL_PATTERN

DESTINATION_KINDS = ("function", "url", "subject")
URL_PATTERN = re.compile(r"^https?://[^/\s]+")
URL_MAX_LENGTH = 2048
SUBJECT_PATTERN = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
SUBJECT_MAX_LENGTH = 256


@dataclass(frozen=True, slots=True)
class Destination:
    """Where an async invocation's outcome goes: exactly one of the three."""

    function: str | None = None  # a Function in the same namespace, invoked async
    url: str | None = None  # POSTed the record
    subject: str | None = None  # a NATS subject the record is published on

    def as_dict(self) -> dict[str, str]:
        for key in DESTINATION_KINDS:
            value = getattr(self, key)
            if value:
                return {key: value}
        return {}


def parse_destination(raw: Any, where: str, problems: list[str]) -> Destination | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.append(f"{where} must be an object with one of function, url or subject")
        return None
    given = [key for key in DESTINATION_KINDS if raw.get(key)]
    if len(given) != 1:
        problems.append(
            f"{where} must have exactly one of function, url or subject "
            f"(found: {', '.join(given) or 'none'})"
        )
        return None
    kind, value = given[0], str(raw[given[0]])
    if kind == "function" and (
        len(value) > DNS_LABEL_MAX_LENGTH or not DNS_LABEL_PATTERN.match(value)
    ):
        problems.append(
            f"{where}.function {value!r} must be a Function's name (a DNS label: at most "
            f"{DNS_LABEL_MAX_LENGTH} lowercase letters, digits and '-')"
        )
    if kind == "url" and (len(value) > URL_MAX_LENGTH or not URL_PATTERN.match(value)):
        problems.append(
            f"{where}.url {value!r} must be an http(s) URL of at most {URL_MAX_LENGTH} characters"
        )
    if kind == "subject" and (len(value) > SUBJECT_MAX_LENGTH or not SUBJECT_PATTERN.match(value)):
        problems.append(
            f"{where}.subject {value!r} must be a NATS subject of dot-separated tokens "
            f"(letters, digits, '-' and '_'; no wildcards; at most {SUBJECT_MAX_LENGTH})"
        )
    return Destination(**{kind: value})
