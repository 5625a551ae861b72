"""Reading a message between processes (a catalog entry, a record): the JSON object and
its required text fields. Each failure is raised as the message's own error, so whoever
reads a malformed message is told which message and which field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def json_object(raw: bytes | str, what: str, invalid: type[ValueError]) -> Mapping[str, Any]:
    try:
        fields = json.loads(raw)
    except ValueError as bad:
        raise invalid(f"the {what} is not JSON ({bad})") from None
    if not isinstance(fields, dict):
        raise invalid(f"the {what} is not a JSON object")
    return fields


def required_text(
    fields: Mapping[str, Any], name: str, what: str, invalid: type[ValueError]
) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise invalid(f"the {what} has no {name!r} text")
    return value
