"""Function log lines from many replicas, merged in time order: pure functions of the text
``kubectl logs --timestamps`` returns. The runtime writes JSON lines carrying the request id
of the invocation (hanshu_runtime.logs), which is what ``--request-id`` filters on."""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, order=True)
class LogLine:
    time: datetime.datetime
    pod: str
    text: str
    fields: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def request_id(self) -> str | None:
        found = self.fields.get("requestId")
        return str(found) if found is not None else None


def parse_duration(text: str) -> int:
    """``10m`` -> 600 (seconds): s, m, h or d, as kubectl's --since takes them."""
    matched = _DURATION.match(text.strip())
    if matched is None:
        raise ValueError(f"{text!r} is not a duration such as 30s, 10m, 2h or 1d")
    return int(matched.group(1)) * _UNIT_SECONDS[matched.group(2)]


def parse_timestamp(text: str) -> datetime.datetime:
    """RFC 3339 with up to nanoseconds, as the kubelet prefixes each line."""
    text = text.strip().replace("Z", "+00:00")
    main, _, rest = text.partition(".")
    if rest:
        digits = re.match(r"\d+", rest)
        fraction = digits.group(0) if digits else ""
        zone = rest[len(fraction) :]
        text = f"{main}.{fraction[:6].ljust(6, '0')}{zone}"
    moment = datetime.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def parse_line(pod: str, raw: str) -> LogLine | None:
    """One ``TIMESTAMP TEXT`` line of a pod's log; None for an empty or unstamped line."""
    stamp, _, text = raw.rstrip("\r\n").partition(" ")
    if not text and not stamp:
        return None
    try:
        moment = parse_timestamp(stamp)
    except ValueError:
        return None
    fields: dict[str, Any] = {}
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):
            fields = loaded
    return LogLine(moment, pod, text, fields)


def parse_log(pod: str, text: str) -> list[LogLine]:
    return [line for raw in text.splitlines() if (line := parse_line(pod, raw)) is not None]


def merge(lines: Iterable[LogLine], request_id: str | None = None) -> list[LogLine]:
    """Every line in time order; with ``request_id``, only that invocation's lines."""
    chosen = [line for line in lines if request_id is None or line.request_id == request_id]
    return sorted(chosen, key=lambda line: (line.time, line.pod))


def render(line: LogLine) -> str:
    """A readable line: time, pod, level, message, the request id; a fault's stack after."""
    moment = line.time.astimezone(datetime.UTC).strftime("%H:%M:%S.%f")[:-3]
    if not line.fields:
        return f"{moment} {line.pod} {line.text}"
    level = str(line.fields.get("level", "")).ljust(7)
    message = str(line.fields.get("message", ""))
    request = f" [{line.request_id}]" if line.request_id else ""
    rendered = f"{moment} {line.pod} {level} {message}{request}"
    stack = line.fields.get("stackTrace")
    if isinstance(stack, list) and stack:
        rendered += "\n" + "".join(str(part) for part in stack).rstrip()
    return rendered
