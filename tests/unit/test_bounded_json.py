"""Untrusted JSON within bounds (hanshu_api.bounded_json) and the pure readers built on it:
Batch bodies, bucket notifications, and the scope of an Idempotency-Key."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hanshu_api.api_keys import key_fingerprint
from hanshu_api.bounded_json import MAX_DEPTH, JsonRefused, json_path, loads, too_deep
from hanshu_api.invocations import function_scope, idempotency_key, route_scope
from hanshu_gateway.async_intake import BadBatch, batch_events
from hanshu_gateway.object_events import (
    BadNotification,
    ObjectEvent,
    SubscriptionConfirmation,
    read_notification,
)
from hypothesis import given, settings
from hypothesis import strategies as st

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:', max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=40,
)


def depth_of(value: Any) -> int:
    pending, deepest = [(value, 0)], 0
    while pending:
        item, level = pending.pop()
        if isinstance(item, list | dict):  # a container is a level of its own
            deepest = max(deepest, level + 1)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, level + 1) for child in children)
    return deepest


def refused(data: bytes | str, **bounds: Any) -> JsonRefused:
    with pytest.raises(JsonRefused) as caught:
        loads(data, max_bytes=bounds.pop("max_bytes", 1 << 20), **bounds)
    return caught.value


def test_the_depth_bound_is_exact_and_names_where_it_was_passed():
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH, max_bytes=1000) is not None
    too_deep_doc = refused("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert too_deep_doc.limit == ("depth", MAX_DEPTH)
    assert too_deep_doc.field == "[0][0][0][0][0][0][0][0][0][0]..."
    # Brackets inside strings (escaped quotes included) do not nest.
    assert loads(json.dumps({"a": '\\"[[[' * 500}), max_bytes=10_000, max_depth=2)
    deep = refused(json.dumps({"Records": [{"s3": {"x.y": [[[[1]]]]}}]}), max_depth=5)
    assert deep.field == 'Records[0].s3["x.y"][0]'
    assert "deeper than 5 levels at Records[0]" in str(deep)
    # Far past the interpreter's recursion limit: refused, not a RecursionError.
    assert refused(b"[" * 200_000).limit == ("depth", MAX_DEPTH)
    assert refused(b'{"a":' * 50_000).field.startswith("a.a.a")


def test_size_encoding_and_what_json_does_not_have_are_refused():
    assert refused(b"[1]", max_bytes=2).limit == ("bytes", 2)
    assert "not UTF-8 (byte 1)" in str(refused(b'"\xff"'))
    assert "not JSON" in str(refused(b"[1,"))
    for bad in (b"NaN", b"[Infinity]", b"-Infinity", b"9" * 5000):
        assert refused(bad).limit is None
    assert "line 2" in str(refused(b"{", what="line 2"))


@settings(max_examples=300, deadline=None)
@given(value=JSON, limit=st.integers(0, 12))
def test_the_depth_scan_agrees_with_the_real_depth(value: Any, limit: int):
    text = json.dumps(value)
    assert too_deep(text, limit) == (depth_of(value) > limit)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v)[:-1].encode()))
def test_any_bytes_parse_or_are_refused_and_nothing_else(data: bytes):
    with contextlib.suppress(JsonRefused):  # and never anything else
        loads(data, max_bytes=150, max_depth=4)


def test_json_paths_read_as_javascript():
    assert json_path(("Records", 1, "s3", "object", "key")) == "Records[1].s3.object.key"
    assert json_path(("Message", "Records", 0)) == "Message.Records[0]"
    assert json_path(()) == "$"


def test_a_batch_is_split_at_newlines_only_and_counted_before_it_is_encoded():
    assert batch_events('{"a": "x\u2028y"}\n2'.encode()) == ['{"a": "x\u2028y"}'.encode(), b"2"]
    with pytest.raises(BadBatch, match="at most 10000 events, got 10001"):
        batch_events(b"[" + b",".join([b"1"] * 10_001) + b"]")
    assert len(batch_events(json.dumps([{"n": 1}, {"items": [[[[[1]]]]]}]).encode())) == 2
    deep = b'[{"n": 1}, {"items": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}]"
    with pytest.raises(BadBatch) as caught:
        batch_events(deep)
    assert caught.value.field is not None
    assert caught.value.field.startswith("[1].items[0][0]")
    assert caught.value.limit == ("depth", MAX_DEPTH)
    with pytest.raises(BadBatch, match="over the limit of 10"):
        batch_events(b"[1, 2, 3, 4, 5]", max_bytes=10)


RECORD = {
    "eventName": "ObjectCreated:Put",
    "eventTime": "2026-11-27T10:00:00.000Z",
    "s3": {"bucket": {"name": "photos"}, "object": {"key": "in/my+cat.jpg", "size": 3}},
}


def with_field(path: tuple[str | int, ...], value: Any, record: Any = None) -> dict[str, Any]:
    document = {"Records": [json.loads(json.dumps(record or RECORD))]}
    parent: Any = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return document


def bad(document: Any) -> BadNotification:
    with pytest.raises(BadNotification) as caught:
        read_notification(document)
    return caught.value


def test_a_notification_is_read_into_typed_events_with_the_key_decoded_once():
    events = read_notification({"Records": [RECORD]})
    assert isinstance(events, list)
    (event,) = events
    assert isinstance(event, ObjectEvent)
    assert (event.bucket, event.key, event.event_name) == (
        "photos",
        "in/my cat.jpg",
        "s3:ObjectCreated:Put",
    )
    confirm = read_notification(
        {"Type": "SubscriptionConfirmation", "SubscribeURL": "https://sns.x/", "TopicArn": "t"}
    )
    assert confirm == SubscriptionConfirmation("t", "https://sns.x/")
    sns = {"Type": "Notification", "Message": json.dumps({"Records": [RECORD]})}
    assert [e.key for e in read_notification(sns)] == ["in/my cat.jpg"]  # type: ignore[union-attr]


def test_a_wrong_type_or_a_missing_field_is_named_by_its_path():
    cases: list[tuple[Any, str, str]] = [
        (with_field(("Records", 0, "s3", "bucket"), "photos"), "Records[0].s3.bucket", "an object"),
        (with_field(("Records", 0, "s3", "bucket"), ["x"]), "Records[0].s3.bucket", "a list"),
        (with_field(("Records", 0, "s3", "object", "size"), -1), "Records[0].s3.object.size", ""),
        (with_field(("Records", 0, "s3", "object", "size"), True), "Records[0].s3.object.size", ""),
        (with_field(("Records", 0, "eventName"), None), "Records[0].eventName", "required"),
        (
            with_field(("Records", 0, "s3", "object", "key"), ""),
            "Records[0].s3.object.key",
            "empty",
        ),
        ({"Records": [RECORD, 7]}, "Records[1]", "a number"),
        ({"Records": {"0": RECORD}}, "Records", "an object"),
        ({}, "Records", "no Records"),
        ({"Type": "Notification", "Message": 7}, "Message", "a number"),
        ({"Type": "Notification", "Message": {"Records": []}}, "Message", "an object"),
        ({"Type": "Notification", "Message": "[1]"}, "Message", "a JSON object"),
        ({"Type": "Notification", "Message": "{"}, "Message", "not JSON"),
        (
            {"Type": "Notification", "Message": json.dumps({"Records": [{**RECORD, "s3": 1}]})},
            "Message.Records[0].s3",
            "an object",
        ),
        ({"Type": 5}, "Type", "a number"),
        (
            {"Type": "SubscriptionConfirmation", "SubscribeURL": "https://h:99999/"},
            "SubscribeURL",
            "",
        ),
        (
            {"Type": "SubscriptionConfirmation", "SubscribeURL": "https://\udc80.x/"},
            "SubscribeURL",
            "",
        ),
        ({"Type": "SubscriptionConfirmation", "SubscribeURL": "ftp://h/"}, "SubscribeURL", ""),
        ({"Type": "Nonsense"}, "Type", "not an SNS message type"),
    ]
    for document, field, says in cases:
        error = bad(document)
        assert error.field == field, (document, str(error))
        assert says in str(error), str(error)


def test_text_that_utf8_cannot_carry_is_named():
    surrogate = with_field(("Records", 0, "s3", "object", "key"), "in/\udc80.jpg")
    assert bad(surrogate).field == "Records[0].s3.object.key"
    not_utf8 = with_field(("Records", 0, "s3", "object", "key"), "in/%80.jpg")
    assert "once percent-decoded" in str(bad(not_utf8))
    elsewhere = with_field(("Records", 0, "glacierEventData"), {"note": ["ok", "\ud800"]})
    assert bad(elsewhere).field == "Records[0].glacierEventData.note[1]"


def test_null_is_absent_for_optional_fields_and_the_oss_event_copes():
    from hanshu_api.models import ObjectStorage
    from hanshu_gateway.object_events import function_event

    document = with_field(("Records", 0, "s3", "bucket", "ownerIdentity"), None)
    document["Records"][0]["userIdentity"] = None
    (event,) = read_notification(document)  # type: ignore[misc]
    oss = function_event(ObjectStorage(bucket="photos", event_format="oss"), event)
    assert oss["events"][0]["oss"]["bucket"]["ownerIdentity"] == ""
    assert oss["events"][0]["userIdentity"] == {"principalId": ""}


def test_an_idempotency_key_is_claimed_per_route_and_credential():
    alice, bob = key_fingerprint("key-of-alice"), key_fingerprint("key-of-bob")
    assert alice == key_fingerprint("key-of-alice") != bob
    assert "key-of-alice" not in alice
    claims = {
        idempotency_key(route_scope("shop", "public", None), "order-42"),
        idempotency_key(route_scope("shop", "private", alice), "order-42"),
        idempotency_key(route_scope("shop", "private", bob), "order-42"),
        idempotency_key(function_scope(("shop", "orders")), "order-42"),
    }
    assert len(claims) == 4
    # Any text hashes: a lone surrogate has no UTF-8, and no scope runs into the key.
    assert idempotency_key(route_scope("a", "b", None), "\udc80").startswith("idem.")
    assert idempotency_key(route_scope("a", "b/c", None), "d") != idempotency_key(
        route_scope("a", "b", None), "c/d"
    )


def test_the_dispatcher_reads_a_deeply_nested_reply_as_text_not_a_recursion_error():
    from hanshu_dispatcher.destinations import payload_of
    from hanshu_dispatcher.outcome import Reply, error_of

    deep = b"[" * 100_000 + b"]" * 100_000
    assert error_of(Reply(500, {}, deep)).as_dict() == {
        "errorType": "HTTP500",
        "errorMessage": "the function answered 500",
    }
    assert payload_of(deep) == deep.decode()
    assert payload_of(b'{"ok": [1]}') == {"ok": [1]}


def test_the_s3_event_keeps_the_key_as_sent_and_the_oss_event_names_the_object():
    from urllib.parse import unquote_plus

    from hanshu_api.models import ObjectStorage
    from hanshu_gateway.object_events import function_event, selected

    # What S3 and moto send for "in/dog+cat 100%41 naïve.jpg" (quote_plus): Lambda code
    # decodes it once; decoded twice it would be "in/dog cat 100A naïve.jpg".
    sent = "in%2Fdog%2Bcat+100%2541+na%C3%AFve.jpg"
    document = with_field(("Records", 0, "s3", "object", "key"), sent)
    (event,) = read_notification(document)  # type: ignore[misc]
    assert event.key == "in/dog+cat 100%41 naïve.jpg"
    # The filters see the object's real name.
    trigger = ObjectStorage(bucket="photos", prefix="in/", suffix="ïve.jpg")
    assert selected(trigger, [event]) == [event]
    s3 = function_event(trigger, event)["Records"][0]
    assert s3["s3"]["object"]["key"] == sent
    assert unquote_plus(s3["s3"]["object"]["key"]) == event.key
    oss = function_event(ObjectStorage(bucket="photos", event_format="oss"), event)
    assert oss["events"][0]["oss"]["object"]["key"] == "in/dog+cat 100%41 naïve.jpg"
