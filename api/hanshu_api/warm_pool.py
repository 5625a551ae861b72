"""The warm pool's contract: who is eligible, how a pool replica is found, and the typed
message that specializes one.

Fission's pool manager is the model: generic runtime pods wait in a per-namespace pool;
when a cold request arrives for an eligible Function, the gateway takes one, hands it the
Function's code and settings over an authenticated internal call, and forwards the waiting
request the moment the pod says it serves. A specialized pod runs that one Function until
the Function's own replicas are ready, then leaves; it is never returned to the pool.

The operator (status condition, pool children), the gateway (claim and specialize) and the
CLI's local pool all decide eligibility here, with one pure function, so the status a user
reads and what the gateway does cannot disagree. The runtime imports nothing of ours: it
keeps its own reader of ``SpecializeRequest``'s JSON, and a unit test keeps the two equal.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import GROUP
from .function_contract import RESERVED_ENV_PREFIX, function_env, user_env
from .function_spec import FILE_NAME_PATTERN, FunctionSpec
from .quantities import parse_quantity

# A pool pod carries LABEL_POOL (the pool's name) and LABEL_POOL_STATE. The pool's
# ReplicaSet selects ``state=available``: relabelling a claimed pod ``specialized`` takes it
# out of the selector, so the ReplicaSet lets it go and starts a replacement (the refill).
LABEL_POOL = f"{GROUP}/pool"
LABEL_POOL_STATE = f"{GROUP}/pool-state"
POOL_STATE_AVAILABLE = "available"
POOL_STATE_SPECIALIZED = "specialized"
# Which Function a specialized pod serves. Not LABEL_FUNCTION: that label is the Function's
# Deployment and Service selector, and a ReplicaSet adopts orphans matching its selector.
LABEL_SPECIALIZED_FOR = f"{GROUP}/specialized-for"
# When the gateway claimed the pod (RFC 3339, UTC), set in the claim's patch: the operator
# deletes a specialized pod older than its bound (the gateway that claimed it may be gone).
ANNOTATION_SPECIALIZED_AT = f"{GROUP}/specialized-at"

# On the runtime's admin port, never on the function port (which public traffic reaches).
SPECIALIZE_PATH = "/_hanshu/specialize"
# A pool runtime starts with no handler and waits for SPECIALIZE_PATH.
POOL_MODE_ENV = "HANSHU_POOL"
# The bearer token SPECIALIZE_PATH requires (Authorization: Bearer <token>): per namespace,
# derived from the platform's internal token, so a pool pod never holds the internal token
# itself (after specialization user code runs in that process).
POOL_TOKEN_ENV = "HANSHU_POOL_TOKEN"  # noqa: S105 - a variable name

# A ConfigMap holds at most 1 MiB; inline code is bounded by the CRD. The message carries
# both plus the environment, with room to spare, and nothing larger is read.
MAX_SPECIALIZE_BYTES = 4 * 1024 * 1024
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def pool_token(internal_token: str, namespace: str) -> str:
    """The token that specializes the pool pods of ``namespace`` (HMAC-SHA256, hex).

    Only the platform (which holds the internal token) can compute it; a token read from
    one namespace's pods specializes nothing in another namespace.
    """
    message = f"hanshu-pool/{namespace}".encode()
    return hmac.new(internal_token.encode(), message, hashlib.sha256).hexdigest()


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison: the time taken says nothing of how much matched."""
    return hmac.compare_digest(given.encode(), expected.encode())


# ---------------------------------------------------------------------------------------
# Eligibility
# ---------------------------------------------------------------------------------------

# Reasons a Function is not served from the pool (the PoolEligible condition's reason).
POOL_ELIGIBLE = "PoolEligible"
NO_POOL = "NoPoolInNamespace"
IMAGE_CODE = "CodeInOwnImage"
SECRET_ENV = "SecretInEnvironment"  # noqa: S105 - a condition reason
REFERENCED_ENV = "EnvironmentFromReference"
OWN_SERVICE_ACCOUNT = "OwnServiceAccount"
NODE_PLACEMENT = "NodePlacement"
RESOURCES_EXCEED_POOL = "ResourcesExceedPool"


@dataclass(frozen=True, slots=True)
class PoolShape:
    """What every pod of a namespace's pool has: a Function fits if it asks for no more."""

    image: str
    resources: Mapping[str, Any] = field(default_factory=dict)
    size: int = 0


@dataclass(frozen=True, slots=True)
class PoolEligibility:
    eligible: bool
    reason: str
    message: str


def _quantity(resources: Mapping[str, Any], section: str, resource: str) -> float | None:
    value = (resources.get(section) or {}).get(resource)
    return None if value is None else parse_quantity(value)


def _exceeds(wanted: Mapping[str, Any], pool: Mapping[str, Any]) -> list[str]:
    """The resources a Function asks for beyond what a pool pod has, as readable phrases."""
    excess = []
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            asked = _quantity(wanted, section, resource)
            if asked is None:
                continue
            has = _quantity(pool, section, resource)
            if has is None and section == "requests":
                has = _quantity(pool, "limits", resource)
            if has is None or asked > has:
                given = (pool.get(section) or {}).get(resource, "none")
                asked_as = (wanted.get(section) or {}).get(resource)
                excess.append(f"{section}.{resource} {asked_as} (the pool's pods have {given})")
    return excess


def pool_eligibility(
    spec: FunctionSpec, pool: PoolShape | None, default_resources: Mapping[str, Any]
) -> PoolEligibility:
    """Whether a cold request for this Function may be served by a pool pod, and if not why.

    Only what can be handed to a running pod is eligible: code (inline or a ConfigMap) for
    the pool's image, plain env values, the namespace's default ServiceAccount, resources
    within the pool pod's, no node placement. Secrets never pass through the gateway.
    """
    if pool is None or pool.size <= 0:
        return PoolEligibility(
            False,
            NO_POOL,
            "this namespace has no warm pool (the chart's warmPool.namespaces lists those "
            "that do); cold starts start a pod",
        )
    if spec.code.image is not None:
        return PoolEligibility(
            False,
            IMAGE_CODE,
            f"the code is in its own image {spec.code.image!r}; a pool pod runs the runtime "
            "image, so only inline or ConfigMap code can be handed to it",
        )
    for entry in spec.env:
        source = entry.get("valueFrom") or {}
        if "secretKeyRef" in source:
            return PoolEligibility(
                False,
                SECRET_ENV,
                f"env {entry.get('name')!r} comes from a Secret; Secrets never pass through "
                "the gateway, so this Function always starts its own pods",
            )
        if source:
            return PoolEligibility(
                False,
                REFERENCED_ENV,
                f"env {entry.get('name')!r} comes from {', '.join(sorted(source))}; only "
                "plain values can be handed to a running pod",
            )
    for entry in spec.env_from:
        kind = "a Secret" if "secretRef" in entry else "a ConfigMap"
        reason = SECRET_ENV if "secretRef" in entry else REFERENCED_ENV
        return PoolEligibility(
            False, reason, f"envFrom takes variables from {kind}; a running pod cannot gain them"
        )
    if spec.service_account_name:
        return PoolEligibility(
            False,
            OWN_SERVICE_ACCOUNT,
            f"the Function runs as ServiceAccount {spec.service_account_name!r}; pool pods "
            "run as the namespace's default one",
        )
    if spec.node_selector or spec.tolerations:
        return PoolEligibility(
            False,
            NODE_PLACEMENT,
            "the Function sets nodeSelector or tolerations; pool pods are already placed",
        )
    excess = _exceeds(spec.effective_resources(default_resources), pool.resources)
    if excess:
        return PoolEligibility(
            False,
            RESOURCES_EXCEED_POOL,
            "the Function asks for more than a pool pod has: " + "; ".join(excess),
        )
    return PoolEligibility(
        True, POOL_ELIGIBLE, "a cold request is served by a warm pool pod while pods start"
    )


# ---------------------------------------------------------------------------------------
# The specialize message
# ---------------------------------------------------------------------------------------


class SpecializeInvalid(ValueError):
    """A specialize request that cannot be used: the message names the field."""


@dataclass(frozen=True, slots=True)
class SpecializeRequest:
    """What a pool runtime is told to become: one Function, for good.

    ``env`` is the whole environment a replica of that Function starts with (the
    ``HANSHU_*`` contract and the Function's plain values, built by ``specialize_env``);
    ``files`` the code, written under the runtime's writable code folder.
    """

    namespace: str
    function: str
    generation: int
    env: Mapping[str, str]
    files: Mapping[str, str]

    def encode(self) -> bytes:
        return json.dumps(
            {
                "namespace": self.namespace,
                "function": self.function,
                "generation": self.generation,
                "env": dict(self.env),
                "files": dict(self.files),
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def parse(cls, raw: bytes) -> SpecializeRequest:
        if len(raw) > MAX_SPECIALIZE_BYTES:
            raise SpecializeInvalid(f"the request is over {MAX_SPECIALIZE_BYTES} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise SpecializeInvalid("the request is not JSON") from None
        if not isinstance(body, dict):
            raise SpecializeInvalid("the request must be a JSON object")
        namespace, function = body.get("namespace"), body.get("function")
        for name, value in (("namespace", namespace), ("function", function)):
            if not isinstance(value, str) or not value:
                raise SpecializeInvalid(f"{name} must be a non-empty string")
        generation = body.get("generation")
        if not isinstance(generation, int) or isinstance(generation, bool) or generation < 1:
            raise SpecializeInvalid("generation must be a whole number >= 1")
        env = _string_map(body.get("env"), "env")
        for key in env:
            if not _ENV_NAME.match(key):
                raise SpecializeInvalid(f"env name {key!r} is not a variable name")
        if "HANSHU_HANDLER" not in env:
            raise SpecializeInvalid("env must name HANSHU_HANDLER")
        files = _string_map(body.get("files"), "files")
        if not files:
            raise SpecializeInvalid("files must hold the Function's code")
        for name in files:
            if not FILE_NAME_PATTERN.match(name):
                raise SpecializeInvalid(f"file name {name!r} must be a plain name like 'index.py'")
        return cls(str(namespace), str(function), generation, env, files)


def _string_map(value: object, name: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise SpecializeInvalid(f"{name} must map strings to strings")
    return value


def specialize_env(
    name: str,
    namespace: str,
    spec: FunctionSpec,
    *,
    generation: int | None,
    default_resources: Mapping[str, Any],
    code_dir: str,
    region: str | None = None,
) -> dict[str, str]:
    """The environment a specialized pool pod serves ``name`` with: what a replica of the
    Function gets (the one builder, ``function_env``), then its plain env values.

    Only eligible Functions come here: their env entries are all plain values.
    """
    env = function_env(
        name,
        spec,
        generation=generation,
        default_resources=default_resources,
        code_dir=code_dir,
        namespace=namespace,
        region=region,  # the chart's functionDefaults.region, as the operator tells pods
    )
    for entry in user_env(spec.env):
        key = str(entry.get("name", ""))
        if key and "value" in entry and not key.startswith(RESERVED_ENV_PREFIX):
            env.setdefault(key, str(entry["value"]))
    return env
