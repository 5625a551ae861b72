"""API keys: the operator reads each HTTP Trigger's key Secret (in the Trigger's namespace)
and publishes only salted hashes of the keys, as a Secret in the gateway's namespace; the
gateway reads Secrets there and nowhere else. Keys and hashes never go into a status.

Rotation reaches the gateway within a watch event, not a polling period: kopf watches
Secrets (one stream per watched namespace) and ``state.triggers.key_refs`` maps
(namespace, Secret) to the Triggers that use it, so a Secret nobody references costs a
dictionary lookup. Polling
each Trigger's Secret every few seconds instead would cost 1,000 Triggers ~200 GETs a
second against the API server, and a kopf timer would put a finalizer on every such
Trigger (kopf timers require one), blocking their deletion whenever the operator is gone.

A Trigger's published Secret is deleted when the Trigger is deleted (its watch event: no
finalizer, so deleting a Trigger never waits for the operator), drops ``auth``, becomes
invalid, or its Secret or key goes; without it the gateway answers 503 ApiKeysUnavailable.
Owner references cannot cross namespaces, so Kubernetes cannot do this for us.

Cost: a Secret event costs O(the Triggers that read that Secret): a GET of the Secret,
a GET of the published one and at most one write each; never a pass over every Trigger.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import kopf
from hanshu_api import GROUP, TRIGGER_PLURAL, VERSION
from hanshu_api.api_keys import (
    KeyVerifiers,
    keys_from_secret_value,
    published_secret,
    published_secret_name,
    read_published,
)
from hanshu_api.kube import ApiError, path_for
from hanshu_api.models import ApiKeyAuth, TriggerSpec

from .conditions import FALSE, TRUE, Condition
from .state import OperatorState, operator_state
from .trigger_status import (
    API_KEYS,
    RouteIndex,
    with_retries,
    write_trigger_status,
)

log = logging.getLogger("hanshu.operator")

# Key Secrets in use: (namespace, Secret name) -> (Trigger name, auth) of their users.
KeyRefIndex = Mapping[tuple[str, str], Iterable[tuple[str, ApiKeyAuth]]]


def keys_verdict(
    secret: Mapping[str, Any] | None, namespace: str, auth: ApiKeyAuth
) -> tuple[Condition, list[str]]:
    """(ApiKeysReady, the keys) from the user's Secret as the API returns it (base64
    ``data``); no keys unless the condition is True."""
    where = f"the Secret '{auth.secret_name}' in namespace '{namespace}'"
    if secret is None:
        return Condition(
            API_KEYS,
            FALSE,
            "SecretNotFound",
            f"{where} does not exist; create it with the API keys under '{auth.secret_key}', "
            f"one per line (kubectl -n {namespace} create secret generic {auth.secret_name} "
            f"--from-literal={auth.secret_key}=<key>); until then callers get 503",
        ), []
    data = secret.get("data") or {}
    if auth.secret_key not in data:
        present = ", ".join(sorted(data)) or "none"
        return Condition(
            API_KEYS,
            FALSE,
            "SecretKeyNotFound",
            f"{where} has no key '{auth.secret_key}' (its keys: {present}); add the API keys "
            f"under '{auth.secret_key}', one per line, or point {_ref_field(auth)} at the "
            "right one; until then callers get 503",
        ), []
    try:
        value = base64.b64decode(data[auth.secret_key], validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError, TypeError):
        value = ""
    keys = keys_from_secret_value(value)
    if not keys:
        return Condition(
            API_KEYS,
            FALSE,
            "NoApiKeys",
            f"{where} holds no API key under '{auth.secret_key}' (it is empty); put the keys "
            "there, one per line; until then callers get 503",
        ), []
    return Condition(
        API_KEYS,
        TRUE,
        "Published",
        f"the gateway checks {len(keys)} API key(s) from {where}, key '{auth.secret_key}'",
    ), keys


def _ref_field(auth: ApiKeyAuth) -> str:
    """Where the user names the Secret key, to point them at it."""
    if auth.header == "Authorization":  # a bucket notification token
        return "spec.objectStorage.auth.tokenSecretRef.key"
    return "spec.http.auth.apiKeySecretRef.key"


def published_manifest(
    gateway_namespace: str, namespace: str, trigger: str, verifiers: KeyVerifiers
) -> dict[str, Any]:
    """The published Secret with base64 ``data``, which is what the API returns and the
    gateway reads: ``stringData`` is write-only, turned into ``data`` by a real API server
    but stored as sent by simpler ones (kmock), where the gateway would find nothing."""
    manifest = published_secret(gateway_namespace, namespace, trigger, verifiers)
    plain = manifest.pop("stringData")
    manifest["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in plain.items()}
    return manifest


def _published_path(state: OperatorState, namespace: str, trigger: str) -> str:
    name = published_secret_name(namespace, trigger)
    return path_for("v1", "secrets", state.config.gateway_namespace, name)


async def publish(state: OperatorState, namespace: str, trigger: str, keys: list[str]) -> None:
    """Publish verifiers of ``keys`` unless those are the keys already published: a new
    salt only when the key set changes, so the Secret (and the gateway) stay quiet."""
    path = _published_path(state, namespace, trigger)
    existing = await state.kube.get(path)
    found = read_published(existing) if existing is not None else None
    if found is not None and found[0] == (namespace, trigger) and found[1].same_keys(keys):
        return
    gateway_namespace = state.config.gateway_namespace
    manifest = published_manifest(gateway_namespace, namespace, trigger, KeyVerifiers.of_keys(keys))
    if existing is not None:
        await state.kube.merge_patch(path, manifest)
        return
    try:
        await state.kube.create(path_for("v1", "secrets", gateway_namespace), manifest)
    except ApiError as error:
        if error.status != 409:
            raise
        await state.kube.merge_patch(path, manifest)  # created meanwhile: ours to overwrite


async def unpublish(state: OperatorState, namespace: str, trigger: str) -> None:
    await state.kube.delete(_published_path(state, namespace, trigger))


async def _publish_from_secret(
    state: OperatorState, namespace: str, name: str, auth: ApiKeyAuth
) -> Condition:
    # Read inside the caller's lock: the last publish to run read the latest Secret.
    secret = await state.kube.get(path_for("v1", "secrets", namespace, auth.secret_name))
    condition, keys = keys_verdict(secret, namespace, auth)
    if keys:
        await publish(state, namespace, name, keys)
    else:
        await unpublish(state, namespace, name)
    return condition


async def sync_api_keys(
    state: OperatorState, namespace: str, name: str, trigger: TriggerSpec
) -> Condition | None:
    """Publish (or withdraw) a Trigger's verifiers; the ApiKeysReady condition, or None
    when the Trigger asks for no keys. Call with ``state.api_keys_lock`` held.

    A Trigger without keys costs one DELETE (a 404, normally) per reconcile, as much as
    its Function lookup: it is how a Trigger that dropped ``auth`` while the operator
    was down loses its verifiers."""
    auth = trigger.auth
    if auth is None:
        await unpublish(state, namespace, name)
        return None
    return await _publish_from_secret(state, namespace, name, auth)


async def refresh_api_keys(
    state: OperatorState,
    namespace: str,
    name: str,
    secret_name: str,
    key_refs: KeyRefIndex,
    routes: RouteIndex,
) -> None:
    """Re-publish one Trigger's keys after its Secret changed, and say so in its status."""
    async with state.api_keys_lock(namespace, name):
        # The index is the present: a Trigger that stopped using this Secret meanwhile
        # is handled by its own reconcile.
        refs = key_refs.get((namespace, secret_name), ())
        auth = next((auth for trigger, auth in refs if trigger == name), None)
        if auth is None:
            return
        condition = await _publish_from_secret(state, namespace, name, auth)
        if await write_trigger_status(state, namespace, name, routes, keys=condition) is None:
            await unpublish(state, namespace, name)  # deleted meanwhile: publish nothing


@kopf.on.event("", "v1", "secrets")
async def republish_keys_of_changed_secret(
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """A key Secret was created, changed (a rotation) or deleted: every Trigger that uses
    it re-publishes. Listings count too: a change made while the watch was down arrives
    as one; a Secret nobody uses is one lookup."""
    if namespace is None:
        return
    state = operator_state(memo)
    key_refs = state.triggers.key_refs
    users = sorted({trigger for trigger, _auth in key_refs.get((namespace, name), ())})
    if not users:
        return
    routes = state.triggers.routes
    async with state.reconcile_slots:  # (``bounded``)
        await _republish(state, namespace, name, users, key_refs, routes)


async def _republish(
    state: OperatorState,
    namespace: str,
    name: str,
    users: list[str],
    key_refs: KeyRefIndex,
    routes: RouteIndex,
) -> None:
    for trigger in users:
        await with_retries(
            f"publishing the API keys of Trigger {namespace}/{trigger}",
            functools.partial(
                refresh_api_keys,
                state,
                namespace,
                trigger,
                name,
                key_refs,
                routes,
            ),
        )


@kopf.on.event(GROUP, VERSION, TRIGGER_PLURAL)
async def unpublish_keys_of_deleted_trigger(
    type: str | None, namespace: str | None, name: str, spec: kopf.Spec, memo: kopf.Memo, **_: Any
) -> None:
    """The watch's DELETED event, not ``@kopf.on.delete``: an optional deletion handler
    only runs while a finalizer holds the object, and a mandatory one would put a
    finalizer on every Trigger, blocking their deletion whenever the operator is gone.
    A deletion the operator misses leaves a Secret that verifies keys for no route; a new
    Trigger of that name re-publishes or deletes it."""
    if type != "DELETED" or namespace is None or not (spec.get("http") or {}).get("auth"):
        return
    state = operator_state(memo)

    async def withdraw() -> None:
        async with state.api_keys_lock(namespace, name):
            await unpublish(state, namespace, name)

    async with state.reconcile_slots:
        await with_retries(f"deleting the API keys of Trigger {namespace}/{name}", withdraw)
