"""Stream records as a Function sees them, and what its reply means for each (pure).

The event: ``{"records": [{"id", "source", "data", "dataEncoding", "attributes"}]}``.
``data`` is the record decoded: JSON where it is JSON (``dataEncoding: json``), else the
text when it is UTF-8 (``text``), else base64 (``base64``). A Redis entry with one field
named ``data`` is that field; any other entry is its fields (``fields``).

The reply, after Lambda's event source mappings: a 2xx succeeds the whole batch unless
``reportBatchItemFailures`` is on and the body lists ``batchItemFailures``: then those
records failed (in ordered mode, every record from the first failed one on, since a later
record may not run before an earlier one); an item id not in the batch fails the batch.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hanshu_api.error_body import ErrorBody, reply_error

MAX_RECORDS_IN_FAILURE = 100  # of a failed batch, the records put in the failure record


@dataclass
class Record:
    id: str
    source: str  # "nats:ORDERS", "redis:orders"
    data: Any  # decoded
    encoding: str
    attributes: dict[str, Any]
    timestamp: float  # epoch seconds when the source stored it
    deliveries: int = 1
    handle: Any = field(default=None, repr=False)  # what the source acknowledges

    def event(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "data": self.data,
            "dataEncoding": self.encoding,
            "attributes": self.attributes,
        }


def decode(raw: bytes) -> tuple[Any, str]:
    """(data, encoding) for a record's bytes."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode(), "base64"
    try:
        return json.loads(text), "json"
    except ValueError:
        return text, "text"


def decode_fields(fields: Mapping[bytes, bytes]) -> tuple[Any, str]:
    """A Redis Stream entry: its ``data`` field decoded, or its fields as text."""
    if list(fields) == [b"data"]:
        return decode(fields[b"data"])
    shown = {}
    for name, value in fields.items():
        try:
            shown[name.decode()] = value.decode()
        except UnicodeDecodeError:
            shown[name.decode(errors="replace")] = base64.b64encode(value).decode()
    return shown, "fields"


def batch_event(records: Sequence[Record]) -> dict[str, Any]:
    return {"records": [record.event() for record in records]}


@dataclass(frozen=True, slots=True)
class Verdict:
    succeeded: list[Record]
    failed: list[Record]
    throttled: bool = False  # the platform did not run it: retry without using an attempt
    error: ErrorBody | None = None


def judge_reply(
    records: Sequence[Record],
    status: int,
    body: bytes,
    *,
    report_item_failures: bool,
    ordered: bool,
    gateway_error: str | None = None,
) -> Verdict:
    if gateway_error and status in (429, 503):
        return Verdict([], list(records), throttled=True, error=_error(status, body))
    if not 200 <= status < 300:
        return Verdict([], list(records), error=_error(status, body))
    if not report_item_failures:
        return Verdict(list(records), [])
    failed_ids = _item_failures(body)
    if failed_ids is None:
        return Verdict(list(records), [])
    known = {record.id for record in records}
    if not failed_ids <= known:
        # Lambda's rule: an identifier that is not in the batch fails the whole batch.
        return Verdict(
            [],
            list(records),
            error=ErrorBody(
                "InvalidBatchItemFailures",
                "batchItemFailures names records not in the batch: "
                + ", ".join(sorted(failed_ids - known))[:500],
            ),
        )
    if ordered:
        first = next((i for i, r in enumerate(records) if r.id in failed_ids), len(records))
        return Verdict(list(records[:first]), list(records[first:]))
    return Verdict(
        [r for r in records if r.id not in failed_ids],
        [r for r in records if r.id in failed_ids],
    )


def _item_failures(body: bytes) -> set[str] | None:
    try:
        reply = json.loads(body)
    except ValueError:
        return None
    if not isinstance(reply, dict):
        return None
    items = reply.get("batchItemFailures")
    if not isinstance(items, list) or not items:
        return None
    return {str(item.get("itemIdentifier")) for item in items if isinstance(item, dict)}


def _error(status: int, body: bytes) -> ErrorBody:
    return reply_error(status, body, not_delivered="NotDelivered")


def too_old(record: Record, max_age: float, now: float | None = None) -> bool:
    return (now if now is not None else time.time()) - record.timestamp > max_age


def failure_record(
    *,
    function_arn: str,
    trigger: str,
    condition: str,
    attempts: int,
    records: Sequence[Record],
    error: ErrorBody | None,
    now: float,
) -> dict[str, Any]:
    """What onFailure receives: Lambda's stream failure record (version 1.0), with the
    failed records themselves (a NATS or Redis record may be gone once acknowledged)."""
    import datetime

    stamp = datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat(timespec="milliseconds")
    return {
        "version": "1.0",
        "timestamp": stamp.replace("+00:00", "Z"),
        "requestContext": {
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "responseContext": {"functionError": "Unhandled"} if error else {},
        "error": error.as_dict() if error else None,
        "streamBatchInfo": {
            "trigger": trigger,
            "source": records[0].source if records else "",
            "firstRecordId": records[0].id if records else None,
            "lastRecordId": records[-1].id if records else None,
            "batchSize": len(records),
        },
        "records": [record.event() for record in records[:MAX_RECORDS_IN_FAILURE]],
    }
