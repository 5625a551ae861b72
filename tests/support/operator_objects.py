"""What the operator's tests create: a Function (``hello``), a Trigger bound to it, a
Secret of API keys, and the resources the operator writes them as."""

from __future__ import annotations

import base64
import copy
from typing import Any

from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL

FN = f"{API_VERSION}/{FUNCTION_PLURAL}"
DEPLOYMENTS = "apps/v1/deployments"

HELLO = {
    "apiVersion": API_VERSION,
    "kind": "Function",
    "metadata": {"name": "hello"},
    "spec": {
        "handler": "index.handler",
        "code": {"inline": {"index.py": "def handler(event, context):\n    return 'hi'\n"}},
        "timeoutSeconds": 20,
        "concurrency": 8,
        "env": [{"name": "GREETING", "value": "hi"}],
    },
}


def hello(**spec: Any) -> dict[str, Any]:
    body = copy.deepcopy(HELLO)
    body["spec"].update(spec)
    return body


TRG = f"{API_VERSION}/{TRIGGER_PLURAL}"


def trigger(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Trigger",
        "metadata": {"name": name},
        "spec": {"functionRef": {"name": "hello"}, **spec},
    }


GATEWAY_NAMESPACE = "hanshu-system"  # the operator's default HANSHU_GATEWAY_NAMESPACE
SECRETS = "v1/secrets"


def keys_secret(name: str = "api-keys", **data: str) -> dict[str, Any]:
    """A Secret as the API returns it: base64 ``data``."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }
