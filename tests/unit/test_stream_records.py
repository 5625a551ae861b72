"""Stream records and replies, without a server: decoding, Lambda's batchItemFailures rules
in both orderings, and the failure record."""

from __future__ import annotations

import pytest
from hanshu_api.error_body import ErrorBody
from hanshu_api.models import SpecInvalid, parse_trigger_spec
from hanshu_dispatcher.stream_records import (
    Record,
    batch_event,
    decode,
    decode_fields,
    failure_record,
    judge_reply,
    too_old,
)


def records(*ids: str) -> list[Record]:
    return [Record(i, "redis:s", {"i": i}, "json", {}, timestamp=1000.0) for i in ids]


def test_data_is_json_text_or_base64():
    assert decode(b'{"a": 1}') == ({"a": 1}, "json")
    assert decode(b"plain") == ("plain", "text")
    assert decode(b"\xff\x00") == ("/wA=", "base64")
    assert decode_fields({b"data": b"[1, 2]"}) == ([1, 2], "json")
    assert decode_fields({b"user": b"ada", b"n": b"3"}) == ({"user": "ada", "n": "3"}, "fields")


def test_the_event_lists_each_record():
    event = batch_event(records("1-0"))
    assert event == {
        "records": [
            {"id": "1-0", "source": "redis:s", "data": {"i": "1-0"}, "dataEncoding": "json",
             "attributes": {}}
        ]
    }  # fmt: skip


def judge(status: int, body: bytes, *, ordered: bool = False, report: bool = True, **kw):
    return judge_reply(
        records("a", "b", "c"), status, body, report_item_failures=report, ordered=ordered, **kw
    )


def ids(found: list[Record]) -> list[str]:
    return [r.id for r in found]


def test_a_2xx_succeeds_the_batch_unless_items_failed():
    assert ids(judge(200, b"ok").succeeded) == ["a", "b", "c"]
    assert ids(judge(200, b'{"batchItemFailures": []}').succeeded) == ["a", "b", "c"]
    failed_b = b'{"batchItemFailures": [{"itemIdentifier": "b"}]}'
    unordered = judge(200, failed_b)
    assert (ids(unordered.succeeded), ids(unordered.failed)) == (["a", "c"], ["b"])
    # Ordered: nothing after the first failed record may run before it.
    ordered = judge(200, failed_b, ordered=True)
    assert (ids(ordered.succeeded), ids(ordered.failed)) == (["a"], ["b", "c"])
    # Without reportBatchItemFailures the body is only the function's answer.
    assert ids(judge(200, failed_b, report=False).succeeded) == ["a", "b", "c"]


def test_an_unknown_item_or_an_error_fails_the_whole_batch():
    unknown = judge(200, b'{"batchItemFailures": [{"itemIdentifier": "zz"}]}')
    assert ids(unknown.failed) == ["a", "b", "c"]
    assert unknown.error is not None
    assert unknown.error.error_type == "InvalidBatchItemFailures"
    crashed = judge(500, b'{"errorType": "KeyError", "errorMessage": "x"}')
    assert ids(crashed.failed) == ["a", "b", "c"]
    assert crashed.error == ErrorBody("KeyError", "x")
    throttled = judge(503, b"{}", gateway_error="FunctionNotReady")
    assert throttled.throttled
    assert not judge(503, b"{}").throttled  # the function's own 503 is a failure


def test_records_older_than_the_bound_are_too_old():
    assert too_old(records("a")[0], 60, now=1061.0)
    assert not too_old(records("a")[0], 60, now=1059.0)


def test_the_failure_record_holds_the_records():
    record = failure_record(
        function_arn="arn:hanshu:function:ns:fn",
        trigger="ns/orders",
        condition="RetryAttemptsExhausted",
        attempts=3,
        records=records("a", "b"),
        error=ErrorBody("E", "m"),
        now=0.0,
    )
    assert record["error"] == {"errorType": "E", "errorMessage": "m"}
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["streamBatchInfo"]["firstRecordId"] == "a"
    assert [r["id"] for r in record["records"]] == ["a", "b"]


def test_a_stream_trigger_spec_is_checked():
    trigger = parse_trigger_spec(
        {
            "functionRef": {"name": "f"},
            "stream": {"redis": {"stream": "s", "urlSecretRef": {"name": "r"}}},
        }
    )
    assert trigger.stream is not None
    assert trigger.source_type == "stream"
    assert (trigger.stream.batch_size, trigger.stream.ordered) == (10, True)
    assert trigger.stream.redis.url.key == "url"  # type: ignore[union-attr]
    with pytest.raises(SpecInvalid) as bad:
        parse_trigger_spec(
            {
                "functionRef": {"name": "f"},
                "stream": {
                    "nats": {"stream": "bad name"},
                    "redis": {"stream": "s"},
                    "batchSize": 5000,
                    "batchWindow": "10m",
                },
            }
        )
    problems = " | ".join(bad.value.problems)
    assert "exactly one source: nats or redis" in problems
    assert "must be a JetStream stream name" in problems
    assert "urlSecretRef.name is required" in problems
    assert "batchSize must be from 1 to 1000" in problems
    assert "batchWindow must be at most 5m" in problems
