"""API keys as the gateway verifies them: salted hashes, never the keys.

The user's Secret (in the Trigger's namespace) holds the keys, one per line so a rotation
can hold the old and the new key. The operator, which may read Secrets where Triggers
live, publishes only what verifying needs (a random salt and one SHA-256 per key) as a
Secret in the gateway's own namespace; the gateway reads Secrets only there. API keys are
long random tokens, so one salted SHA-256 is enough (as GitHub and Stripe store tokens);
a slow password hash would cost every request milliseconds for no gain.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import GROUP, LABEL_COMPONENT, LABEL_MANAGED_BY, MANAGED_BY

COMPONENT = "api-keys"
VERIFIERS_KEY = "verifiers"  # the data key of a published Secret
ANNOTATION_TRIGGER_NAMESPACE = f"{GROUP}/trigger-namespace"
ANNOTATION_TRIGGER_NAME = f"{GROUP}/trigger-name"
# Selects the published Secrets (the gateway watches only these, in its namespace).
SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT}={COMPONENT}"
_NAME_LIMIT = 253  # a Secret name is a DNS subdomain


def keys_from_secret_value(value: str) -> list[str]:
    """One key per line, so a Secret can hold the old and the new key while rotating."""
    return [line.strip() for line in value.splitlines() if line.strip()]


def _digest(salt: bytes, key: str) -> bytes:
    return hashlib.sha256(salt + key.encode()).digest()


@dataclass(frozen=True, slots=True)
class KeyVerifiers:
    salt: bytes
    hashes: tuple[bytes, ...]

    @classmethod
    def of_keys(cls, keys: Iterable[str], salt: bytes | None = None) -> KeyVerifiers:
        salt = salt if salt is not None else os.urandom(16)
        return cls(salt, tuple(sorted(_digest(salt, key) for key in keys)))

    def matches(self, presented: str) -> bool:
        """Constant-time against every key: the time tells neither which key matched nor
        how much of one."""
        digest = _digest(self.salt, presented)
        matched = False
        for known in self.hashes:
            matched |= hmac.compare_digest(digest, known)
        return matched

    def same_keys(self, keys: Iterable[str]) -> bool:
        """Whether these verifiers were made from exactly these keys (no republish)."""
        return self == KeyVerifiers.of_keys(keys, self.salt)

    def encode(self) -> str:
        return json.dumps(
            {"salt": self.salt.hex(), "sha256": [h.hex() for h in self.hashes]}, sort_keys=True
        )

    @classmethod
    def decode(cls, text: str) -> KeyVerifiers:
        """Raises ValueError on anything but what ``encode`` writes."""
        try:
            document = json.loads(text)
            return cls(
                bytes.fromhex(document["salt"]),
                tuple(bytes.fromhex(h) for h in document["sha256"]),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not a Hanshu key verifier document: {error}") from None


def key_fingerprint(presented: str) -> str:
    """A stable name for an API key that does not reveal it: SHA-256 over a fixed label and
    the key (API keys are long random tokens, so the digest cannot be turned back into one).
    Not the verifiers' salted digest: the operator draws a new salt whenever the keys
    change, and a key kept through a rotation must keep its name (the Idempotency-Keys it
    presented stay its own)."""
    labelled = b"hanshu-api-key-fingerprint\0" + presented.encode(errors="surrogatepass")
    return hashlib.sha256(labelled).hexdigest()[:32]


def published_secret_name(namespace: str, trigger: str) -> str:
    """``hanshu-keys.<namespace>.<trigger>``: readable, and unambiguous since a namespace
    has no dots; names too long for a Secret fall back to a digest."""
    name = f"hanshu-keys.{namespace}.{trigger}"
    if len(name) <= _NAME_LIMIT:
        return name
    return f"hanshu-keys.{namespace}.{hashlib.sha256(trigger.encode()).hexdigest()[:32]}"


def published_secret(
    gateway_namespace: str, namespace: str, trigger: str, verifiers: KeyVerifiers
) -> dict[str, Any]:
    """The Secret the operator applies in the gateway's namespace (pure)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": published_secret_name(namespace, trigger),
            "namespace": gateway_namespace,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_COMPONENT: COMPONENT},
            "annotations": {
                ANNOTATION_TRIGGER_NAMESPACE: namespace,
                ANNOTATION_TRIGGER_NAME: trigger,
            },
        },
        "stringData": {VERIFIERS_KEY: verifiers.encode()},
    }


def read_published(secret: Mapping[str, Any]) -> tuple[tuple[str, str], KeyVerifiers] | None:
    """((namespace, trigger), verifiers) of a published Secret as the API returns it
    (base64 ``data``), or None when it is not one."""
    meta = secret.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    namespace = annotations.get(ANNOTATION_TRIGGER_NAMESPACE)
    trigger = annotations.get(ANNOTATION_TRIGGER_NAME)
    encoded = (secret.get("data") or {}).get(VERIFIERS_KEY)
    if not namespace or not trigger or not encoded:
        return None
    try:
        return (namespace, trigger), KeyVerifiers.decode(base64.b64decode(encoded).decode())
    except ValueError:
        return None
