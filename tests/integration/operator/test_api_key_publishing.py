"""API keys: the operator publishes salted verifiers of a Trigger's keys to the gateway's
namespace, follows rotations within seconds, and withdraws them. Under kopf, against kmock."""

from __future__ import annotations

import base64
import json
from typing import Any

import kmock
from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL
from hanshu_api.api_keys import KeyVerifiers, published_secret_name, read_published
from hanshu_api.kube import path_for

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

PUBLISHED = published_secret_name(NAMESPACE, "api")


async def replace_data(cluster: Cluster, **data: str) -> None:
    """Edit the user's Secret (a merge patch keeps keys not named: list them all)."""
    await cluster.patch("v1", "secrets", "api-keys", {"data": keys_secret(**data)["data"]})


def with_auth(secret: str = "api-keys", key: str = "api-key") -> dict[str, Any]:
    return trigger(
        "api", http={"path": "/v1", "auth": {"apiKeySecretRef": {"name": secret, "key": key}}}
    )


def published(cluster: Cluster) -> KeyVerifiers | None:
    if not cluster.exists(SECRETS, PUBLISHED, GATEWAY_NAMESPACE):
        return None
    found = read_published(cluster.object(SECRETS, PUBLISHED, GATEWAY_NAMESPACE))
    assert found is not None, "the published Secret is not a verifier document"
    assert found[0] == (NAMESPACE, "api")
    return found[1]


def keys_condition(cluster: Cluster, status: str, reason: str):
    def probe() -> dict[str, Any] | None:
        found = cluster.condition(TRG, "api", "ApiKeysReady")
        return found if found and (found["status"], found["reason"]) == (status, reason) else None

    return probe


async def test_published_verifiers_follow_the_users_secret(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    await operator.create("v1", "secrets", keys_secret(**{"api-key": "key-one\n"}))
    await operator.create(API_VERSION, TRIGGER_PLURAL, with_auth())

    verifiers = await eventually(lambda: published(operator), message="the published Secret")
    assert verifiers.matches("key-one")
    assert not verifiers.matches("key-two")
    assert not verifiers.matches("")
    secret = operator.object(SECRETS, PUBLISHED, GATEWAY_NAMESPACE)
    assert "key-one" not in json.dumps(secret)
    assert base64.b64encode(b"key-one").decode() not in json.dumps(secret)
    await eventually(keys_condition(operator, "True", "Published"))
    ready = operator.condition(TRG, "api")
    assert ready is not None
    assert ready["status"] == "True"
    # Neither the keys nor their hashes go into the Trigger.
    trigger_text = json.dumps(operator.object(TRG, "api"))
    assert "key-one" not in trigger_text
    assert not any(digest.hex() in trigger_text for digest in verifiers.hashes)

    # Rotation: the old and the new key side by side, then the old one retired.
    await replace_data(operator, **{"api-key": "key-one\nkey-two"})
    rotated = await eventually(
        lambda: (v := published(operator)) is not None and v.matches("key-two") and v,
        timeout=5,
        message="the new key accepted within seconds",
    )
    assert rotated.matches("key-one")
    await replace_data(operator, **{"api-key": "key-two"})
    await eventually(
        lambda: (v := published(operator)) is not None and not v.matches("key-one"),
        timeout=5,
        message="the retired key refused within seconds",
    )

    await operator.delete(API_VERSION, TRIGGER_PLURAL, "api")
    await eventually(
        lambda: not operator.exists(SECRETS, PUBLISHED, GATEWAY_NAMESPACE),
        message="the published Secret deleted with its Trigger",
    )


def reads_of_the_users_secret(cluster: Cluster) -> int:
    return sum(
        1
        for request in cluster.emulator[kmock.resource(SECRETS)]
        if request.method == "GET" and (request.namespace, request.name) == (NAMESPACE, "api-keys")
    )


async def test_an_unchanged_key_set_is_not_republished(operator: Cluster):
    """Same keys, same salt: a change to the Secret that keeps the keys rewrites nothing
    (the gateway would otherwise reload on every unrelated edit)."""
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    await operator.create("v1", "secrets", keys_secret(**{"api-key": "key-one"}))
    await operator.create(API_VERSION, TRIGGER_PLURAL, with_auth())
    first = await eventually(lambda: published(operator), message="the published Secret")
    await eventually(keys_condition(operator, "True", "Published"))
    reads = reads_of_the_users_secret(operator)

    await replace_data(operator, other="x", **{"api-key": "key-one"})
    await eventually(
        lambda: reads_of_the_users_secret(operator) > reads,
        message="the operator re-read the changed Secret",
    )
    await eventually(keys_condition(operator, "True", "Published"))
    assert published(operator) == first
    assert not [
        request
        for request in operator.emulator[kmock.resource(SECRETS)]
        if request.method == "PATCH" and request.name == PUBLISHED
    ]


async def test_a_missing_secret_or_key_is_a_condition_and_publishes_nothing(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    await operator.create(API_VERSION, TRIGGER_PLURAL, with_auth())

    missing = await eventually(keys_condition(operator, "False", "SecretNotFound"))
    assert "the Secret 'api-keys' in namespace 'ns1' does not exist" in missing["message"]
    assert "kubectl -n ns1 create secret generic api-keys" in missing["message"]
    ready = operator.condition(TRG, "api")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "SecretNotFound")
    assert not operator.exists(SECRETS, PUBLISHED, GATEWAY_NAMESPACE)
    warned = await eventually(lambda: operator.events("SecretNotFound"), message="a Warning")
    assert warned[0]["type"] == "Warning"

    # The Secret appears, with the keys under another name: the Secret watch sees it.
    await operator.create("v1", "secrets", keys_secret(token="key-one"))
    wrong_key = await eventually(keys_condition(operator, "False", "SecretKeyNotFound"))
    assert "has no key 'api-key' (its keys: token)" in wrong_key["message"]
    assert not operator.exists(SECRETS, PUBLISHED, GATEWAY_NAMESPACE)

    # Fixed: published, and Ready.
    await replace_data(operator, **{"api-key": "key-one"})
    await eventually(keys_condition(operator, "True", "Published"))
    await eventually(lambda: published(operator), message="published once the key exists")
    ready = operator.condition(TRG, "api")
    assert ready is not None
    assert ready["status"] == "True"

    # The Secret is deleted: the verifiers go, so the gateway answers 503, not stale keys.
    await operator.delete("v1", "secrets", "api-keys")
    await eventually(keys_condition(operator, "False", "SecretNotFound"))
    assert not operator.exists(SECRETS, PUBLISHED, GATEWAY_NAMESPACE)
    # One Warning per change (twice to SecretNotFound), not one per reconcile or event.
    await eventually(lambda: len(operator.events("SecretNotFound")) == 2)
    assert len(operator.events("SecretKeyNotFound")) == 1


async def test_dropping_auth_withdraws_the_published_keys(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    await operator.create("v1", "secrets", keys_secret(**{"api-key": "key-one"}))
    await operator.create(API_VERSION, TRIGGER_PLURAL, with_auth())
    await eventually(lambda: published(operator), message="the published Secret")

    await operator.kube.merge_patch(
        path_for(API_VERSION, TRIGGER_PLURAL, NAMESPACE, "api"),
        {"metadata": {"generation": 2}, "spec": {"http": {"auth": None}}},
    )
    await eventually(
        lambda: not operator.exists(SECRETS, PUBLISHED, GATEWAY_NAMESPACE),
        message="the published Secret withdrawn with auth",
    )
    await eventually(lambda: operator.condition(TRG, "api", "ApiKeysReady") is None)
