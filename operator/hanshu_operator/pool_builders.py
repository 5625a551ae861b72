"""A namespace's warm pool, built by pure functions: settings in, manifests out, no I/O.

Three objects per pooled namespace: the ``hanshu-pool`` Deployment of generic runtime
pods, the Secret holding the namespace's pool token (the only credential a pool pod has),
and a NetworkPolicy that lets only the gateway's pods reach them. The pods meet the
restricted Pod Security Standard, as Function pods do (``builders.build_pod_template``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from hanshu_api import (
    ADMIN_PORT,
    FUNCTION_PORT,
    LABEL_COMPONENT,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_PART_OF,
    MANAGED_BY,
    RUNTIME_CONTAINER,
)
from hanshu_api.warm_pool import (
    LABEL_POOL,
    LABEL_POOL_STATE,
    POOL_MODE_ENV,
    POOL_STATE_AVAILABLE,
    POOL_TOKEN_ENV,
    PoolShape,
    pool_token,
)

from .builders import (
    OTLP_ENDPOINT_ENV,
    TMP_SIZE_LIMIT,
    container_security_context,
    pod_security_context,
    probe,
)
from .config import OperatorConfig

POOL_NAME = "hanshu-pool"
POOL_TOKEN_SECRET = "hanshu-pool-token"  # noqa: S105 - a Secret's name
POOL_TOKEN_KEY = "token"  # noqa: S105 - a key's name
# A retired specialized pod finishes its requests in flight within this (the gateway
# deletes it with the same grace period).
POOL_GRACE_SECONDS = 30


def pool_labels() -> dict[str, str]:
    """The labels of every pool object; the pods add LABEL_POOL_STATE."""
    return {
        LABEL_NAME: "hanshu-pool",
        LABEL_COMPONENT: "warm-pool",
        LABEL_PART_OF: "hanshu",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_POOL: POOL_NAME,
    }


def available_selector() -> dict[str, str]:
    """The pool ReplicaSet's selector: a pod relabelled ``specialized`` leaves it, and the
    ReplicaSet starts a replacement (the refill)."""
    return {LABEL_POOL: POOL_NAME, LABEL_POOL_STATE: POOL_STATE_AVAILABLE}


def build_pool_token_secret(namespace: str, internal_token: str) -> dict[str, Any]:
    token = pool_token(internal_token, namespace)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": POOL_TOKEN_SECRET, "namespace": namespace, "labels": pool_labels()},
        "type": "Opaque",
        # data, not stringData: apply compares what the server keeps, so an unchanged
        # token is no write (and no new resourceVersion) at every start.
        "data": {POOL_TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }


def build_pool_deployment(
    namespace: str, shape: PoolShape, config: OperatorConfig
) -> dict[str, Any]:
    """The ``hanshu-pool`` Deployment of ``shape.size`` generic runtime pods."""
    container: dict[str, Any] = {
        "name": RUNTIME_CONTAINER,
        "image": shape.image or config.runtime_image,
        "imagePullPolicy": config.image_pull_policy,
        "env": [
            {"name": POOL_MODE_ENV, "value": "1"},
            {
                "name": POOL_TOKEN_ENV,
                "valueFrom": {"secretKeyRef": {"name": POOL_TOKEN_SECRET, "key": POOL_TOKEN_KEY}},
            },
            # The platform's OTLP endpoint, as Function pods get it (builders.runtime_env):
            # the specialize request carries only the Function's env, so without it the
            # cold requests a pool pod serves would leave no span. A Function's own value
            # in its env replaces it at specialization.
            *(
                [{"name": OTLP_ENDPOINT_ENV, "value": config.function_otlp_endpoint}]
                if config.function_otlp_endpoint
                else []
            ),
        ],
        "ports": [
            {"name": "http", "containerPort": FUNCTION_PORT, "protocol": "TCP"},
            {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
        ],
        # Ready means listening and claimable: the gateway claims only Ready pool pods.
        # Pool pods carry no LABEL_FUNCTION and no Service selects them, before or after
        # specialization: requests reach them only through the gateway that claimed one.
        "readinessProbe": probe("/healthz", period=1, failures=1),
        "livenessProbe": probe("/healthz", period=10, failures=3),
        "resources": dict(shape.resources),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": container_security_context(),
    }
    pod_labels = {**pool_labels(), **available_selector()}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": POOL_NAME, "namespace": namespace, "labels": pool_labels()},
        "spec": {
            "replicas": shape.size,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": available_selector()},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}}],
                    "enableServiceLinks": False,
                    # The namespace's default ServiceAccount, and never its token: user
                    # code will run in this pod.
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": POOL_GRACE_SECONDS,
                    "securityContext": pod_security_context(),
                },
            },
        },
    }


def build_pool_network_policy(namespace: str, config: OperatorConfig) -> dict[str, Any]:
    """Pool pods, available or specialized, take traffic from the gateway's pods only: the
    specialize call (admin port) and the requests it forwards (function port). Always
    built, whatever ``networkPolicy`` says for Functions: the admin port's specialize path
    must be unreachable from other pods (kubelet probes are not subject to it)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": POOL_NAME, "namespace": namespace, "labels": pool_labels()},
        "spec": {
            "podSelector": {"matchLabels": {LABEL_POOL: POOL_NAME}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {
                                    "kubernetes.io/metadata.name": config.gateway_namespace
                                }
                            },
                            "podSelector": {"matchLabels": dict(config.gateway_pod_labels)},
                        }
                    ],
                    "ports": [
                        {"port": FUNCTION_PORT, "protocol": "TCP"},
                        {"port": ADMIN_PORT, "protocol": "TCP"},
                    ],
                }
            ],
        },
    }


def pool_children(
    namespace: str, shape: PoolShape, config: OperatorConfig
) -> list[Mapping[str, Any]]:
    """Everything a pooled namespace holds, Secret first (the pods read it at start)."""
    return [
        build_pool_token_secret(namespace, config.internal_token),
        build_pool_network_policy(namespace, config),
        build_pool_deployment(namespace, shape, config),
    ]
