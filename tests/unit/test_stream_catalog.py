"""The stream catalog's messages: a sealed Secret opens only with the platform's token and
for its own Trigger; the readers' reports merge into one status."""

from __future__ import annotations

import pytest
from hanshu_api.streams import (
    StreamEntry,
    StreamEntryInvalid,
    StreamReport,
    merge_reports,
    stream_entry,
)

URL = "redis://:s3cret@redis:6379/0"
STREAM = {"redis": {"stream": "orders", "urlSecretRef": {"name": "redis"}}, "batchSize": 10}


def test_a_sealed_url_opens_with_the_token_only_and_for_its_trigger_only() -> None:
    entry = stream_entry("shop", "orders", "ingest", STREAM, URL, "token")
    raw = entry.encode()
    assert b"s3cret" not in raw
    parsed = StreamEntry.parse(raw)
    assert parsed.url("token") == URL
    assert parsed.source().batch_size == 10
    with pytest.raises(StreamEntryInvalid, match="HANSHU_INTERNAL_TOKEN"):
        parsed.url("another token")
    moved = StreamEntry("shop", "refunds", "ingest", STREAM, parsed.sealed)
    with pytest.raises(StreamEntryInvalid):
        moved.url("token")  # copied into another Trigger's entry, it does not open


def test_an_unchanged_entry_seals_the_same() -> None:
    # A reconcile that changed nothing puts nothing: the readers are not restarted.
    first = stream_entry("shop", "orders", "ingest", STREAM, URL, "token").encode()
    assert stream_entry("shop", "orders", "ingest", STREAM, URL, "token").encode() == first
    assert stream_entry("shop", "orders", "ingest", STREAM, URL + "1", "token").encode() != first


def report(reader: str, healthy: bool, at: float, **more: object) -> StreamReport:
    return StreamReport("shop", "orders", reader, healthy, f"{reader} says", at, **more)  # type: ignore[arg-type]


def test_reports_merge_into_one_status() -> None:
    reports = [
        report("a", True, 100.0, lag=5, last_delivery=90.0, delivered=10),
        report("b", False, 101.0, lag=4, delivered=3, failed=1),
        report("dead", True, 10.0, lag=900, last_delivery=99.0, delivered=7),
    ]
    merged = merge_reports(reports, now=102.0, fresh_seconds=30.0)
    assert merged is not None
    assert (merged.healthy, merged.message) == (True, "a says")  # one reads: it is read
    assert merged.lag == 4  # the latest fresh figure; the dead reader's is not counted
    assert merged.last_delivery == 90.0
    assert (merged.delivered, merged.failed) == (13, 1)
    down = merge_reports([reports[1]], now=102.0)
    assert down is not None
    assert (down.healthy, down.message) == (False, "b says")
    assert merge_reports([reports[2]], now=102.0, fresh_seconds=30.0) is None


def test_a_report_round_trips() -> None:
    sent = report("a", True, 100.0, lag=5, last_delivery=90.5, delivered=10, failed=2)
    assert StreamReport.parse(sent.encode()) == sent
    with pytest.raises(StreamEntryInvalid):
        StreamReport.parse(b"[]")
