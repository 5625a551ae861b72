"""Object storage Triggers under the operator: the notification URL in the status, and the
bucket's token published as verifiers (never the token) like an API key."""

from __future__ import annotations

import json

from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL
from hanshu_api.api_keys import published_secret_name, read_published

from tests.support.helpers import eventually
from tests.support.operator_cluster import NAMESPACE, Cluster
from tests.support.operator_objects import (
    GATEWAY_NAMESPACE,
    SECRETS,
    TRG,
    hello,
    keys_secret,
    trigger,
)


def bucket(**auth: object) -> dict[str, object]:
    return trigger(
        "photos",
        objectStorage={"bucket": "photos", "filter": {"prefix": "in/"}, **auth},
    )


async def test_the_status_names_where_the_bucket_sends_notifications(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    await operator.create(API_VERSION, TRIGGER_PLURAL, bucket())

    def ready() -> dict | None:
        found = operator.condition(TRG, "photos")
        return found if found and found["status"] == "True" else None

    await eventually(ready, message="the Trigger Ready")
    status = operator.object(TRG, "photos")["status"]
    assert status["url"] == f"http://gateway.example/_hanshu/events/{NAMESPACE}/photos"
    assert status["type"] == "objectStorage"
    served = operator.condition(TRG, "photos", "Served")
    assert served is not None
    assert served["reason"] == "Listening"
    assert "bucket photos" in served["message"]


async def test_the_token_is_published_as_verifiers_only(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    await operator.create("v1", "secrets", keys_secret("bucket-token", token="t0ken-value"))
    await operator.create(
        API_VERSION,
        TRIGGER_PLURAL,
        bucket(auth={"tokenSecretRef": {"name": "bucket-token"}}),
    )
    name = published_secret_name(NAMESPACE, "photos")

    def published() -> object:
        if not operator.exists(SECRETS, name, GATEWAY_NAMESPACE):
            return None
        return read_published(operator.object(SECRETS, name, GATEWAY_NAMESPACE))

    found = await eventually(published, message="the published verifiers")
    assert found[0] == (NAMESPACE, "photos")  # type: ignore[index]
    assert found[1].matches("t0ken-value")  # type: ignore[index]
    assert not found[1].matches("other")  # type: ignore[index]
    assert "t0ken-value" not in json.dumps(operator.object(SECRETS, name, GATEWAY_NAMESPACE))


async def test_a_missing_token_key_names_the_field_to_fix(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    await operator.create("v1", "secrets", keys_secret("bucket-token", other="x"))
    await operator.create(
        API_VERSION,
        TRIGGER_PLURAL,
        bucket(auth={"tokenSecretRef": {"name": "bucket-token"}}),
    )

    def refused() -> dict | None:
        found = operator.condition(TRG, "photos", "ApiKeysReady")
        return found if found and found["reason"] == "SecretKeyNotFound" else None

    found = await eventually(refused, message="SecretKeyNotFound")
    assert "spec.objectStorage.auth.tokenSecretRef.key" in found["message"]
