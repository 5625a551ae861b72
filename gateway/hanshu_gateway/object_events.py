"""Bucket notifications in, Function events out (pure).

Two senders reach a Trigger's notification endpoint: MinIO's webhook target (the S3
``Records`` JSON, with ``EventName`` and ``Key`` beside it) and AWS SNS' HTTP delivery (an
envelope whose ``Message`` is the S3 ``Records`` JSON, or a subscription confirmation).
Each record that passes the Trigger's filters becomes one event, in the S3 shape the
senders use or in Function Compute's OSS trigger shape.
"""

from __future__ import annotations

import base64
import copy
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hanshu_api.models import ObjectStorage

# S3 event names -> Function Compute's OSS event names.
OSS_EVENT_NAMES = {
    "ObjectCreated:Put": "ObjectCreated:PutObject",
    "ObjectCreated:Post": "ObjectCreated:PostObject",
    "ObjectCreated:Copy": "ObjectCreated:CopyObject",
    "ObjectCreated:CompleteMultipartUpload": "ObjectCreated:CompleteMultipartUpload",
    "ObjectRemoved:Delete": "ObjectRemoved:DeleteObject",
    "ObjectRemoved:DeleteMarkerCreated": "ObjectRemoved:DeleteObjects",
}


class BadNotification(ValueError):
    """The body is not a notification this endpoint understands."""


@dataclass(frozen=True, slots=True)
class SubscriptionConfirmation:
    """SNS asks the endpoint to confirm by fetching ``subscribe_url``."""

    topic_arn: str
    subscribe_url: str


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    bucket: str
    key: str  # decoded once: the object's real name
    event_name: str  # "s3:ObjectCreated:Put": the s3: prefix always present
    record: Mapping[str, Any]  # the S3 record as sent, with its key decoded

    @property
    def dedup_key(self) -> str:
        """The same notification delivered twice (SNS and MinIO retry) runs once."""
        s3 = self.record.get("s3") or {}
        obj = s3.get("object") or {}
        # S3's sequencer orders the events of one key; without one (MinIO, moto), the same
        # bytes uploaded again still make a new event: the time tells them apart.
        sequencer = (
            obj.get("sequencer") or f"{obj.get('eTag', '')}@{self.record.get('eventTime', '')}"
        )
        return f"{self.bucket}/{self.key}/{self.event_name}/{sequencer}"


def parse_notification(body: bytes) -> SubscriptionConfirmation | list[ObjectEvent]:
    """The records in a MinIO or SNS notification; raises BadNotification."""
    try:
        document = json.loads(body)
    except ValueError as bad:
        raise BadNotification(f"the body is not JSON: {bad}") from None
    if not isinstance(document, dict):
        raise BadNotification("the body is not a JSON object")
    kind = document.get("Type")
    if kind == "SubscriptionConfirmation":
        url = document.get("SubscribeURL")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise BadNotification("a SubscriptionConfirmation without a SubscribeURL")
        return SubscriptionConfirmation(str(document.get("TopicArn", "")), url)
    if kind == "UnsubscribeConfirmation":
        return []
    if kind == "Notification":
        try:
            document = json.loads(document.get("Message") or "{}")
        except ValueError as bad:
            raise BadNotification(f"the SNS Message is not JSON: {bad}") from None
        if not isinstance(document, dict):
            raise BadNotification("the SNS Message is not a JSON object")
    if document.get("Event") == "s3:TestEvent":  # S3 checks a new configuration with it
        return []
    records = document.get("Records")
    if not isinstance(records, list):
        raise BadNotification("no Records: send S3 event notifications (MinIO webhook or SNS)")
    return [event for record in records if (event := _event(record)) is not None]


def _event(record: Any) -> ObjectEvent | None:
    if not isinstance(record, dict):
        return None
    s3 = record.get("s3")
    if not isinstance(s3, dict) or not isinstance(s3.get("object"), dict):
        return None
    bucket = str((s3.get("bucket") or {}).get("name") or "")
    raw_key = str((s3.get("object") or {}).get("key") or "")
    # S3 and MinIO form-encode the key ('+' for a space): decoded once, never twice.
    key = urllib.parse.unquote_plus(raw_key)
    name = str(record.get("eventName") or "")
    name = name if name.startswith("s3:") else f"s3:{name}"
    decoded = copy.deepcopy(record)
    decoded["s3"]["object"]["key"] = key
    return ObjectEvent(bucket, key, name, decoded)


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
    s3 = record.get("s3") or {}
    obj = s3.get("object") or {}
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
                "ownerIdentity": (s3.get("bucket") or {})
                .get("ownerIdentity", {})
                .get("principalId", ""),
            },
            "object": {
                "key": event.key,
                "size": obj.get("size", 0),
                "eTag": obj.get("eTag", ""),
                "deltaSize": obj.get("size", 0),
            },
            "ossSchemaVersion": "1.0",
            "ruleId": s3.get("configurationId", ""),
        },
        "requestParameters": {
            "sourceIPAddress": (record.get("requestParameters") or {}).get("sourceIPAddress", "")
        },
        "responseElements": {
            "requestId": (record.get("responseElements") or {}).get("x-amz-request-id", "")
        },
        "userIdentity": {"principalId": (record.get("userIdentity") or {}).get("principalId", "")},
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
