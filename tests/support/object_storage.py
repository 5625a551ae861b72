"""Object storage Triggers as a bucket's notifications reach the gateway: a Trigger on a
bucket, the Secret holding its notification token, MinIO's webhook records and bodies."""

from __future__ import annotations

import json
from typing import Any

TOKEN = "notify-s3cret"


def bucket_trigger(name: str, function_name: str, **storage: Any) -> dict[str, Any]:
    return {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Trigger",
        "metadata": {"name": name},
        "spec": {"functionRef": {"name": function_name}, "objectStorage": storage},
    }


TOKEN_SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "bucket-token"},
    "stringData": {"token": TOKEN},
}


def minio_record(key: str, event: str = "s3:ObjectCreated:Put", bucket: str = "photos") -> dict:
    """One record as MinIO's webhook sends it (the S3 shape; the key form-encoded)."""
    return {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": "",
        "eventTime": "2026-11-27T10:00:00.000Z",
        "eventName": event,
        "userIdentity": {"principalId": "minioadmin"},
        "requestParameters": {"sourceIPAddress": "10.0.0.7"},
        "responseElements": {"x-amz-request-id": "17AB"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "minioadmin"}},
            "object": {"key": key, "size": 2048, "eTag": "e1", "sequencer": f"SEQ-{key}"},
        },
    }


def minio_body(*records: dict[str, Any]) -> bytes:
    first = records[0]
    return json.dumps(
        {
            "EventName": first["eventName"],
            "Key": f"{first['s3']['bucket']['name']}/{first['s3']['object']['key']}",
            "Records": list(records),
        }
    ).encode()
