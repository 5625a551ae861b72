"""Bucket notifications in, Function events out (pure).

Two senders reach a Trigger's notification endpoint: MinIO's webhook target (the S3
``Records`` JSON, with ``EventName`` and ``Key`` beside it) and AWS SNS' HTTP delivery (an
envelope whose ``Message`` is the S3 ``Records`` JSON, or a subscription confirmation).
Each record that passes the Trigger's filters becomes one event, in the S3 shape the
senders use or in Function Compute's OSS trigger shape. A notification is checked whole
(every record, every field the gateway reads or promises a Function) before any record is
used, so a bad one is a 400 naming the field and nothing of it is stored.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hanshu_api import bounded_json
from hanshu_api.bounded_json import JsonRefused, json_path
from hanshu_api.models import ObjectStorage
from yarl import URL

# What a bucket may send in one notification (MinIO batches records; S3 sends one): the
# body, and the SNS Message inside it, are parsed within this and bounded_json.MAX_DEPTH.
MAX_NOTIFICATION_BYTES = 1024 * 1024

# S3 event names -> Function Compute's OSS event names.
OSS_EVENT_NAMES = {
    "ObjectCreated:Put": "ObjectCreated:PutObject",
    "ObjectCreated:Post": "ObjectCreated:PostObject",
    "ObjectCreated:Copy": "ObjectCreated:CopyObject",
    "ObjectCreated:CompleteMultipartUpload": "ObjectCreated:CompleteMultipartUpload",
    "ObjectRemoved:Delete": "ObjectRemoved:DeleteObject",
    "ObjectRemoved:DeleteMarkerCreated": "ObjectRemoved:DeleteObjects",
}


class BadNotification(JsonRefused):
    """The body is not a notification this endpoint understands; ``field`` names the value."""


@dataclass(frozen=True, slots=True)
class SubscriptionConfirmation:
    """SNS asks the endpoint to confirm by fetching ``subscribe_url``."""

    topic_arn: str
    subscribe_url: str


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    bucket: str
    key: str  # decoded once: the object's real name, what filters and OSS events use
    event_name: str  # "s3:ObjectCreated:Put": the s3: prefix always present
    # The S3 record exactly as sent, its key still form-encoded ("dog%2Bcat.jpg",
    # "my+photo.jpg" for a space): Lambda code, AWS's tutorials included, calls
    # urllib.parse.unquote_plus() on it, so a decoded key would be decoded twice.
    record: Mapping[str, Any]

    @property
    def dedup_key(self) -> str:
        """The same notification delivered twice (SNS and MinIO retry) runs once."""
        obj = _object(self.record, "s3", "object")
        # S3's sequencer orders the events of one key; without one (MinIO, moto), the same
        # bytes uploaded again still make a new event: the time tells them apart.
        sequencer = obj.get("sequencer") or (
            f"{obj.get('eTag') or ''}@{self.record.get('eventTime') or ''}"
        )
        return f"{self.bucket}/{self.key}/{self.event_name}/{sequencer}"


# What a notification may hold, by JSON path and type: every field the gateway reads or
# that a Function is promised (docs/events.md), so a wrong type is a 400 naming it, never an
# AttributeError later. A parent comes before its fields. Fields not named here pass on to
# the Function as sent (within the depth bound). An optional field may be null (Go senders
# such as MinIO write a nil map as null): it counts as absent.
Schema = tuple[tuple[tuple[str, ...], type, bool], ...]
_STRING, _OBJECT, _LIST, _SIZE = str, dict, list, int

ENVELOPE_FIELDS: Schema = (
    (("Type",), _STRING, False),
    (("MessageId",), _STRING, False),
    (("TopicArn",), _STRING, False),
    (("Subject",), _STRING, False),
    (("Message",), _STRING, False),
    (("Timestamp",), _STRING, False),
    (("SignatureVersion",), _STRING, False),
    (("Signature",), _STRING, False),
    (("SigningCertURL",), _STRING, False),
    (("UnsubscribeURL",), _STRING, False),
    (("SubscribeURL",), _STRING, False),
    (("Token",), _STRING, False),
    (("MessageAttributes",), _OBJECT, False),
)
EVENTS_FIELDS: Schema = (
    (("EventName",), _STRING, False),  # MinIO's webhook: the first record's name and key
    (("Key",), _STRING, False),
    (("Event",), _STRING, False),  # "s3:TestEvent" when S3 checks a new configuration
    (("Records",), _LIST, False),  # required unless a test event: checked below
)
RECORD_FIELDS: Schema = (
    (("eventVersion",), _STRING, False),
    (("eventSource",), _STRING, False),
    (("awsRegion",), _STRING, False),
    (("eventTime",), _STRING, False),
    (("eventName",), _STRING, True),
    (("userIdentity",), _OBJECT, False),
    (("userIdentity", "principalId"), _STRING, False),
    (("requestParameters",), _OBJECT, False),
    (("requestParameters", "sourceIPAddress"), _STRING, False),
    (("responseElements",), _OBJECT, False),
    (("responseElements", "x-amz-request-id"), _STRING, False),
    (("responseElements", "x-amz-id-2"), _STRING, False),
    (("s3",), _OBJECT, True),
    (("s3", "s3SchemaVersion"), _STRING, False),
    (("s3", "configurationId"), _STRING, False),
    (("s3", "bucket"), _OBJECT, True),
    (("s3", "bucket", "name"), _STRING, True),
    (("s3", "bucket", "arn"), _STRING, False),
    (("s3", "bucket", "ownerIdentity"), _OBJECT, False),
    (("s3", "bucket", "ownerIdentity", "principalId"), _STRING, False),
    (("s3", "object"), _OBJECT, True),
    (("s3", "object", "key"), _STRING, True),
    (("s3", "object", "size"), _SIZE, False),
    (("s3", "object", "eTag"), _STRING, False),
    (("s3", "object", "versionId"), _STRING, False),
    (("s3", "object", "sequencer"), _STRING, False),
    (("s3", "object", "contentType"), _STRING, False),
    (("s3", "object", "userMetadata"), _OBJECT, False),
    (("source",), _OBJECT, False),  # MinIO: who made the change
    (("source", "host"), _STRING, False),
    (("source", "port"), _STRING, False),
    (("source", "userAgent"), _STRING, False),
)
_KINDS = {_STRING: "a string", _OBJECT: "an object", _LIST: "a list", _SIZE: "a whole number"}
_NON_EMPTY = {("eventName",), ("s3", "bucket", "name"), ("s3", "object", "key")}


def parse_notification(
    body: bytes, max_bytes: int = MAX_NOTIFICATION_BYTES
) -> SubscriptionConfirmation | list[ObjectEvent]:
    """The records in a MinIO or SNS notification, all checked before any is used; raises
    JsonRefused (BadNotification for a value of the wrong type or shape)."""
    return read_notification(bounded_json.loads(body, what="the body", max_bytes=max_bytes))


def read_notification(document: Any) -> SubscriptionConfirmation | list[ObjectEvent]:
    """The notification in a parsed body (pure): typed events, or BadNotification naming
    the first value that is wrong, by its JSON path."""
    if not isinstance(document, dict):
        raise BadNotification(f"the body must be a JSON object, got {_kind_of(document)}")
    _check(document, ENVELOPE_FIELDS, ())
    kind = document.get("Type")
    if kind == "SubscriptionConfirmation":
        url = _subscribe_url(document.get("SubscribeURL"))
        return SubscriptionConfirmation(str(document.get("TopicArn") or ""), url)
    if kind == "UnsubscribeConfirmation":
        return []
    prefix: tuple[str | int, ...] = ()
    if kind == "Notification":
        message = document.get("Message")
        if message is None:
            raise BadNotification(
                "Message: an SNS Notification needs a Message (the S3 event JSON)",
                field="Message",
            )
        try:
            document = bounded_json.loads(
                message, what="the SNS Message", max_bytes=MAX_NOTIFICATION_BYTES
            )
        except JsonRefused as refused:
            inner = f".{refused.field}" if refused.field else ""
            raise BadNotification(
                str(refused), field=f"Message{inner}", limit=refused.limit
            ) from None
        prefix = ("Message",)
        if not isinstance(document, dict):
            raise BadNotification(
                f"Message: the SNS Message must be a JSON object, got {_kind_of(document)}",
                field="Message",
            )
    elif kind is not None:
        raise BadNotification(
            f"Type: {kind[:40]!r} is not an SNS message type (Notification, "
            "SubscriptionConfirmation or UnsubscribeConfirmation)",
            field="Type",
        )
    _check(document, EVENTS_FIELDS, prefix)
    if document.get("Event") == "s3:TestEvent":  # S3 checks a new configuration with it
        return []
    records = document.get("Records")
    if records is None:
        raise BadNotification(
            f"{json_path((*prefix, 'Records'))}: no Records: send S3 event notifications "
            "(MinIO webhook or SNS)",
            field=json_path((*prefix, "Records")),
        )
    return [_event(record, (*prefix, "Records", index)) for index, record in enumerate(records)]


def _subscribe_url(value: Any) -> str:
    """An http(s) URL with a host that can be fetched as it is (the gateway fetches it once
    the token is checked): anything else would fail later, as a 500."""
    refusal = BadNotification(
        "SubscribeURL: a SubscriptionConfirmation needs an http(s) SubscribeURL",
        field="SubscribeURL",
    )
    if not isinstance(value, str) or not _utf8(value):
        raise refusal
    try:
        url = URL(value)
        host = url.host
    except (ValueError, UnicodeError):  # a port out of range, a host IDNA refuses, ...
        raise refusal from None
    if url.scheme not in ("http", "https") or not host:
        raise refusal
    return value


def _event(record: Any, at: tuple[str | int, ...]) -> ObjectEvent:
    if not isinstance(record, dict):
        raise BadNotification(
            f"{json_path(at)} must be an object (an S3 event record), got {_kind_of(record)}",
            field=json_path(at),
        )
    _check(record, RECORD_FIELDS, at)
    _check_text(record, at)
    s3 = record["s3"]
    bucket = str(s3["bucket"]["name"])
    raw_key = str(s3["object"]["key"])
    # S3 and MinIO form-encode the key ('+' for a space): decoded once, never twice; bytes
    # that are not UTF-8 once decoded name no object S3 could hold.
    try:
        key = urllib.parse.unquote_plus(raw_key, errors="strict")
    except UnicodeDecodeError:
        field = json_path((*at, "s3", "object", "key"))
        raise BadNotification(
            f"{field} is not UTF-8 once percent-decoded: S3 object keys are UTF-8",
            field=field,
        ) from None
    name = str(record["eventName"])
    name = name if name.startswith("s3:") else f"s3:{name}"
    return ObjectEvent(bucket, key, name, record)


def _check(document: Mapping[str, Any], schema: Schema, at: tuple[str | int, ...]) -> None:
    """Each field of ``schema`` in ``document`` has its type; required ones are there."""
    for path, kind, required in schema:
        parent: Any = document
        for step in path[:-1]:
            parent = parent.get(step) if isinstance(parent, dict) else None
        value = parent.get(path[-1]) if isinstance(parent, dict) else None
        field = json_path((*at, *path))
        if value is None:
            if required:
                raise BadNotification(f"{field} is required: {_KINDS[kind]}", field=field)
            continue
        negative = isinstance(value, int) and value < 0
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is _SIZE and negative):
            raise BadNotification(
                f"{field} must be {_KINDS[kind]}, got {_kind_of(value)}", field=field
            )
        if path in _NON_EMPTY and not value:
            raise BadNotification(f"{field} must not be empty", field=field)


def _check_text(value: Any, at: tuple[str | int, ...]) -> None:
    """Every string and name in ``value`` is Unicode that UTF-8 can carry: a lone surrogate
    (``"\\udc80"`` in the JSON) would fail where the event is stored or sent on."""
    # A stack, children pushed last-first: the first bad value in document order is named.
    pending: list[tuple[Any, tuple[str | int, ...]]] = [(value, at)]
    while pending:
        item, path = pending.pop()
        if isinstance(item, str):
            if not _utf8(item):
                raise BadNotification(
                    f"{json_path(path)} is not valid Unicode (a lone surrogate such as "
                    "\\udc80): send UTF-8 text",
                    field=json_path(path),
                )
        elif isinstance(item, dict):
            children: list[tuple[Any, tuple[str | int, ...]]] = []
            for name, inner in item.items():
                if not _utf8(name):
                    raise BadNotification(
                        f"a name in {json_path(path)} is not valid Unicode", field=json_path(path)
                    )
                children.append((inner, (*path, name)))
            pending.extend(reversed(children))
        elif isinstance(item, list):
            pending.extend(
                (inner, (*path, index)) for index, inner in reversed(list(enumerate(item)))
            )


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an object" if isinstance(value, dict) else "a list"


def _object(record: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    """The object at ``path`` in a checked record, or an empty one when it is absent."""
    value: Any = record
    for step in path:
        value = value.get(step) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


def event_matches(pattern: str, name: str) -> bool:
    """'s3:ObjectCreated:*' matches 's3:ObjectCreated:Put'; exact names match themselves."""
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return name == pattern


def selected(trigger: ObjectStorage, events: Sequence[ObjectEvent]) -> list[ObjectEvent]:
    return [
        event
        for event in events
        if event.bucket == trigger.bucket
        and any(event_matches(pattern, event.event_name) for pattern in trigger.events)
        and event.key.startswith(trigger.prefix)
        and event.key.endswith(trigger.suffix)
    ]


def function_event(trigger: ObjectStorage, event: ObjectEvent) -> dict[str, Any]:
    """The event the Function gets: one record, in the Trigger's format."""
    if trigger.event_format == "oss":
        return {"events": [_oss_record(event)]}
    return {"Records": [dict(event.record)]}


def _oss_record(event: ObjectEvent) -> dict[str, Any]:
    record = event.record
    s3 = _object(record, "s3")
    obj = _object(record, "s3", "object")
    bare = event.event_name.removeprefix("s3:")
    region = str(record.get("awsRegion") or "")
    return {
        "eventName": OSS_EVENT_NAMES.get(bare, bare),
        "eventSource": "acs:oss",
        "eventTime": record.get("eventTime"),
        "eventVersion": "1.0",
        "region": region,
        "oss": {
            "bucket": {
                "name": event.bucket,
                "arn": f"acs:oss:{region}::{event.bucket}",
                "ownerIdentity": _object(record, "s3", "bucket", "ownerIdentity").get("principalId")
                or "",
            },
            "object": {
                # Function Compute's OSS trigger sends the object's name itself, not
                # encoded: its samples hand oss.object.key to the OSS SDK unchanged
                # (aliyun/serverless-aliyun-function-compute, ossTriggerHandler.js).
                "key": event.key,
                "size": obj.get("size") or 0,
                "eTag": obj.get("eTag") or "",
                "deltaSize": obj.get("size") or 0,
            },
            "ossSchemaVersion": "1.0",
            "ruleId": s3.get("configurationId") or "",
        },
        "requestParameters": {
            "sourceIPAddress": _object(record, "requestParameters").get("sourceIPAddress") or ""
        },
        "responseElements": {
            "requestId": _object(record, "responseElements").get("x-amz-request-id") or ""
        },
        "userIdentity": {"principalId": _object(record, "userIdentity").get("principalId") or ""},
    }


def presented_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The token a notification carries: ``Authorization: Bearer T`` (MinIO's auth_token),
    HTTP basic auth with T as the password (an SNS endpoint URL https://user:T@host/...),
    or ``?token=T`` in the endpoint URL."""
    authorization = headers.get("Authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    token = query.get("token")
    return token or None
