"""What callers and buckets send the event intake, at its worst, through the real gateway
(the dev platform), a real nats-server and real dispatchers: deep nesting, wrong types,
text that is not Unicode, and Idempotency-Keys shared across routes. Each is a 400 naming
what was refused (or runs as it should), never a 500, and never a traceback in the log."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import nats
import pytest
from hanshu_api.invocations import STREAM
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.async_platform import async_function, final_status
from tests.support.dev_platform import trigger
from tests.support.object_storage import (
    TOKEN,
    TOKEN_SECRET,
    bucket_trigger,
    minio_body,
    minio_record,
)

BATCH = {"X-Hanshu-Invocation-Type": "Batch"}
DEPTH_LIMIT = {"name": "depth", "value": 128}


def nested(depth: int, inner: Any = None) -> Any:
    """``inner`` inside ``depth`` lists, built without recursion."""
    value = inner
    for _ in range(depth):
        value = [value]
    return value


async def post(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    # One connection per request: a refused body must be judged on its own, not by what
    # the connection carried before it.
    sent = {"Connection": "close", **(headers or {})}
    async with http.post(url, data=body, headers=sent) as reply:
        text = await reply.text()
        try:
            return reply.status, json.loads(text)
        except ValueError:
            return reply.status, {"text": text}


async def stored_messages(nats_url: str) -> int:
    """How many invocations JetStream holds (nothing runs them: no dispatcher)."""
    client = await nats.connect(nats_url)
    try:
        return int((await client.jetstream().stream_info(STREAM)).state.messages)
    finally:
        await client.close()


def assert_no_traceback(logs: str) -> None:
    assert "Traceback" not in logs, logs[-3000:]


# -- case 6: Batch bodies ---------------------------------------------------------------------


async def test_a_batch_nested_too_deep_is_a_400_naming_the_limit_not_a_500(async_platform, http):
    platform = async_platform([async_function("work"), trigger("work", "work", path="/work")], 0)
    url = f"{platform.url}/work"
    # 200 KB of brackets, as an array and as an NDJSON line after a good one.
    status, body = await post(http, url, b"[" * 200_000, BATCH)
    assert (status, body["errorType"], body["limit"]) == (400, "InvalidBatch", DEPTH_LIMIT)
    assert "deeper than 128 levels" in body["errorMessage"]
    status, body = await post(http, url, b'{"ok": 1}\n' + b'{"a":' * 40_000, BATCH)
    assert (status, body.get("limit")) == (400, DEPTH_LIMIT), body
    assert body["errorMessage"].startswith("line 2 ")
    # Where the nesting is: the event's index and its field.
    deep_event = json.dumps([{"n": 1}, {"n": 2}, {"n": 3, "items": nested(500)}]).encode()
    status, body = await post(http, url, deep_event, BATCH)
    assert status == 400
    assert body["field"].startswith("[2].items[0][0]")
    # What json.loads takes but JSON has not, or cannot be turned back into a number.
    for bad in (b'[{"n": NaN}]', b"[" + b"9" * 5000 + b"]", b'{"n": Infinity}'):
        status, body = await post(http, url, bad, BATCH)
        assert (status, body["errorType"]) == (400, "InvalidBatch"), bad[:40]
    # Just within the bound: taken (the array is one level, the event the other 127).
    status, body = await post(http, url, json.dumps([nested(127, 1)]).encode(), BATCH)
    assert (status, body["total"]) == (202, 1)
    # A JSON string may hold U+2028 as it is: an NDJSON line is not split at it.
    status, body = await post(http, url, '{"a": "x\u2028y"}\n{"b": 2}'.encode(), BATCH)
    assert (status, body["total"]) == (202, 2)
    logs = platform.logs()
    assert_no_traceback(logs)
    # Each refusal is one line in the gateway's log, saying whose input it was and why.
    refusals = [line for line in logs.splitlines() if "refused InvalidBatch" in line]
    assert len(refusals) == 6, refusals
    assert all("for route default/work" in line for line in refusals)


# -- case 7: a notification is checked whole -----------------------------------------------


async def test_a_notification_with_a_record_that_is_not_utf8_stores_nothing(async_platform, http):
    platform = async_platform(
        [
            async_function("seen"),
            bucket_trigger(
                "photos", "seen", bucket="photos", auth={"tokenSecretRef": {"name": "bucket-token"}}
            ),
            TOKEN_SECRET,
        ],
        dispatchers=0,
    )
    url = f"{platform.url}/_hanshu/events/default/photos?token={TOKEN}"
    good = minio_record("in/good.jpg")
    # A lone surrogate as a JSON escape, and a percent-encoded byte that is not UTF-8.
    for bad_key in ("in/\udc80.jpg", "in/%80.jpg"):
        body = minio_body(good, minio_record(bad_key))
        assert b"\\udc80" in body or b"%80" in body
        for _ in range(2):  # the storage retries: the same answer, never a 500
            status, reply = await post(http, url, body)
            assert (status, reply["errorType"]) == (400, "InvalidNotification"), reply
            assert reply["field"] == "Records[1].s3.object.key"
    # A confirmation whose SubscribeURL cannot be fetched as it is (a port out of range, a
    # host IDNA refuses): refused before the gateway would fetch it.
    for subscribe_url in ("https://sns.us-east-1.amazonaws.com:99999/", "https://\udc80.example/"):
        confirmation = {"Type": "SubscriptionConfirmation", "SubscribeURL": subscribe_url}
        status, reply = await post(http, url, json.dumps(confirmation).encode())
        assert (status, reply.get("field")) == (400, "SubscribeURL"), reply
    # Nothing of the refused notifications was stored, not even the good record.
    assert await stored_messages(platform.nats.url) == 0
    status, reply = await post(http, url, minio_body(good, minio_record("in/fine.jpg")))
    assert (status, reply["accepted"]) == (200, 2)
    assert await stored_messages(platform.nats.url) == 2
    assert_no_traceback(platform.logs())


# -- case 8: every field of a notification, with every wrong type ----------------------------


def sns_envelope(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:photos",
        "Subject": "Amazon S3 Notification",
        "Message": json.dumps(message),
        "Timestamp": "2026-11-27T10:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }


def s3_record() -> dict[str, Any]:
    """Every field the S3 event format (2.1) and MinIO's record have."""
    record = minio_record("in/cat.jpg")
    record["responseElements"]["x-amz-id-2"] = "id2"
    record["s3"]["bucket"]["arn"] = "arn:aws:s3:::photos"
    record["s3"]["object"].update({"versionId": "v1", "contentType": "image/jpeg"})
    record["source"] = {"host": "10.0.0.7", "port": "", "userAgent": "MinIO"}
    return record


WRONG: dict[str, Callable[[], Any]] = {
    "a string": lambda: "text",
    "a number": lambda: 7,
    "a list": lambda: ["x"],
    "an object": lambda: {"x": 1},
    "null": lambda: None,
    "600 levels deep": lambda: nested(600),
}


def fields(value: Any, at: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """The JSON path of every value in ``value`` (the root's own path left out)."""
    found: list[tuple[str | int, ...]] = []
    items: list[tuple[str | int, Any]] = (
        list(value.items())
        if isinstance(value, dict)
        else list(enumerate(value))
        if isinstance(value, list)
        else []
    )
    for step, inner in items:
        found.append((*at, step))
        found.extend(fields(inner, (*at, step)))
    return found


def replaced(document: Any, path: tuple[str | int, ...], value: Any, remove: bool = False) -> Any:
    copy = json.loads(json.dumps(document))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    if remove:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return copy


def shown(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in path).lstrip(".")


def same_kind(a: Any, b: Any) -> bool:
    def kind(value: Any) -> str:
        return "number" if isinstance(value, int | float) else type(value).__name__

    return kind(a) == kind(b)


async def test_every_field_of_a_notification_with_a_wrong_type_is_a_400_naming_it(
    async_platform, http
):
    platform = async_platform(
        [
            async_function("seen"),
            bucket_trigger("as-s3", "seen", bucket="photos"),
            bucket_trigger("as-oss", "seen", bucket="photos", eventFormat="oss"),
        ],
        dispatchers=0,
    )
    minio = json.loads(minio_body(s3_record()))
    s3_message = {"Records": [s3_record()]}
    # (the document sent, how a mutation of the notification reaches it, its name)
    shapes: list[tuple[str, Any, Callable[[Any], Any], str]] = [
        ("MinIO webhook", minio, lambda doc: doc, ""),
        ("SNS envelope", sns_envelope(s3_message), lambda doc: doc, ""),
        ("S3 event in SNS", s3_message, sns_envelope, "Message."),
    ]
    checked = 0
    for trigger_name in ("as-s3", "as-oss"):
        url = f"{platform.url}/_hanshu/events/default/{trigger_name}"

        async def send(document: Any) -> tuple[int, dict[str, Any]]:
            return await post(http, url, json.dumps(document).encode())  # noqa: B023

        for shape, valid, wrap, prefix in shapes:
            status, reply = await send(wrap(valid))
            assert (status, reply["accepted"]) == (200, 1), (shape, reply)
            for path in fields(valid):
                if shape == "SNS envelope" and path[0] == "Message":
                    continue  # the S3 event in it is walked as its own shape
                original: Any = valid
                for step in path:
                    original = original[step]
                name = prefix + shown(path)
                for label, make in WRONG.items():
                    value = make()
                    if same_kind(value, original) and label != "600 levels deep":
                        continue  # not a wrong type for this field
                    status, reply = await send(wrap(replaced(valid, path, value)))
                    checked += 1
                    what = f"{shape}: {name} as {label} -> {status} {reply}"
                    assert status < 500, what
                    if value is None and isinstance(path[-1], str):
                        # Null is taken as absent (Go senders write a nil map as null): an
                        # optional field is taken as missing, a required one is named.
                        absent = await send(wrap(replaced(valid, path, None, remove=True)))
                        if status == 200:
                            assert absent[0] == 200, what
                        else:
                            assert status == 400, what
                            assert reply["field"] in (name, absent[1].get("field")), what
                        continue
                    assert (status, reply["errorType"]) == (400, "InvalidNotification"), what
                    if label == "600 levels deep":
                        assert reply["field"].startswith(name), what
                        assert reply["limit"] == DEPTH_LIMIT, what
                    else:
                        assert reply["field"] == name, what
    # 'Records' 5,000 levels deep, as the issue found it.
    url = f"{platform.url}/_hanshu/events/default/as-s3"
    deep_records = b'{"Records": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    status, reply = await post(http, url, deep_records)
    assert (status, reply["field"][:7], reply["limit"]) == (400, "Records", DEPTH_LIMIT)
    assert checked > 200  # the walk really walked
    assert await stored_messages(platform.nats.url) >= 1
    assert_no_traceback(platform.logs())


# -- case 9: an Idempotency-Key belongs to a route and a credential ---------------------------

KEYS_SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "order-keys"},
    "stringData": {"api-key": "key-of-alice-0123456789\nkey-of-bob-9876543210\n"},
}


async def test_an_idempotency_key_is_scoped_to_the_route_and_the_api_key(async_platform, http):
    platform = async_platform(
        [
            async_function("orders"),
            KEYS_SECRET,
            trigger("public", "orders", path="/public"),
            trigger(
                "private",
                "orders",
                path="/private",
                auth={"apiKeySecretRef": {"name": "order-keys"}},
            ),
        ]
    )
    headers = {"X-Hanshu-Invocation-Type": "Async", "Idempotency-Key": "order-42"}
    alice = {**headers, "X-API-Key": "key-of-alice-0123456789"}
    bob = {**headers, "X-API-Key": "key-of-bob-9876543210"}

    async def call(path: str, sent: dict[str, str], n: int) -> dict[str, Any]:
        status, body = await post(
            http, f"{platform.url}{path}", json.dumps({"n": n}).encode(), sent
        )
        assert status == 202, body
        return body

    # A caller of the keyless route claims the key first: the keyed caller's event still runs.
    squatter = await call("/public", headers, 1)
    owner = await call("/private", alice, 2)
    assert (squatter["duplicate"], owner["duplicate"]) == (False, False)
    assert owner["invocationId"] != squatter["invocationId"]
    # The same route and the same API key again: the first call's id, not run again.
    again = await call("/private", alice, 2)
    assert (again["invocationId"], again["duplicate"]) == (owner["invocationId"], True)
    # Another key of the same route is another caller.
    other = await call("/private", bob, 3)
    assert other["duplicate"] is False
    # The keyless route's callers share its scope: a second call there is a duplicate.
    assert (await call("/public", headers, 1))["duplicate"] is True
    ran = {squatter["invocationId"], owner["invocationId"], other["invocationId"]}
    for invocation_id, key in zip(
        (squatter["invocationId"], owner["invocationId"], other["invocationId"]),
        ({}, {"X-API-Key": alice["X-API-Key"]}, {"X-API-Key": bob["X-API-Key"]}),
        strict=True,
    ):
        assert (await final_status(platform, invocation_id, **key))["state"] == "Succeeded"
    starts = [r["id"] for r in platform.runs() if r["what"] == "start"]
    assert sorted(starts) == sorted(ran)  # each once


# -- the class: random JSON-ish bodies never get a 5xx ----------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["\udc80", "in/%80.jpg", "in/%C3%A9.jpg", "", "s3:ObjectCreated:Put"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)


def either(typed: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the right type, sometimes any JSON value."""
    return st.one_of(typed, typed, JSON_VALUES)


RECORDS = st.fixed_dictionaries(
    {},
    optional={
        "eventName": either(st.sampled_from(["s3:ObjectCreated:Put", "ObjectRemoved:Delete"])),
        "eventTime": either(st.text(max_size=24)),
        "awsRegion": either(st.text(max_size=10)),
        "userIdentity": either(
            st.fixed_dictionaries({}, optional={"principalId": either(st.text())})
        ),
        "s3": either(
            st.fixed_dictionaries(
                {},
                optional={
                    "bucket": either(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "name": either(st.just("photos")),
                                "ownerIdentity": either(
                                    st.fixed_dictionaries({}, optional={"principalId": JSON_VALUES})
                                ),
                            },
                        )
                    ),
                    "object": either(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "key": either(st.text(min_size=1, max_size=20)),
                                "size": either(st.integers(min_value=0)),
                                "eTag": either(st.text(max_size=8)),
                                "sequencer": either(st.text(max_size=8)),
                            },
                        )
                    ),
                },
            )
        ),
    },
)
NOTIFICATIONS = st.fixed_dictionaries({"Records": either(st.lists(either(RECORDS), max_size=3))})


def as_sent(document: Any, wrap: str) -> bytes:
    if wrap == "sns":
        document = {"Type": "Notification", "Message": json.dumps(document)}
    return json.dumps(document).encode()


BROKEN = st.one_of(
    st.binary(max_size=64),
    st.integers(0, 3000).map(lambda n: b"[" * n + b"]" * (n // 2)),
    st.integers(0, 3000).map(lambda n: b'{"Records":' + b"[{" * n),
    st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@pytest.mark.slow
def test_random_bodies_to_the_batch_and_notification_intake_never_get_a_5xx(async_platform):
    platform = async_platform(
        [
            async_function("seen"),
            trigger("batch", "seen", path="/batch"),
            bucket_trigger("as-s3", "seen", bucket="photos"),
            bucket_trigger("as-oss", "seen", bucket="photos", eventFormat="oss"),
        ],
        dispatchers=0,
    )
    port = platform.port

    def post_raw(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("POST", path, body=body, headers=headers)
            reply = connection.getresponse()
            return reply.status, reply.read()
        finally:
            connection.close()

    def answered(status: int, body: bytes, what: Any) -> None:
        assert status < 500, (status, body[:300], what)
        if status >= 400:
            error = json.loads(body)
            assert error["errorType"], error
            assert error["errorMessage"], error

    @settings(max_examples=150, deadline=None, database=None)
    @given(
        body=st.one_of(
            JSON_VALUES.map(lambda v: json.dumps(v).encode()),
            st.lists(JSON_VALUES, max_size=5).map(
                lambda events: b"\n".join(json.dumps(e).encode() for e in events)
            ),
            BROKEN,
        )
    )
    def batches(body: bytes) -> None:
        answered(*post_raw("/batch", body, dict(BATCH)), body[:200])

    @settings(max_examples=150, deadline=None, database=None)
    @given(
        body=st.one_of(
            st.tuples(NOTIFICATIONS, st.sampled_from(["minio", "sns"])).map(
                lambda sent: as_sent(*sent)
            ),
            JSON_VALUES.map(lambda v: json.dumps(v).encode()),
            BROKEN,
        ),
        trigger_name=st.sampled_from(["as-s3", "as-oss"]),
    )
    def notifications(body: bytes, trigger_name: str) -> None:
        answered(*post_raw(f"/_hanshu/events/default/{trigger_name}", body, {}), body[:200])

    batches()
    notifications()
    assert_no_traceback(platform.logs())
