"""Children of a Function, built by pure functions: spec in, manifest dict out, no I/O.

Follows dask-kubernetes' operator: the handlers decide and do I/O; these only build, so they
are tested without a cluster. Pods meet the restricted Pod Security Standard.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hanshu_api import (
    ADMIN_PORT,
    ANNOTATION_CHECKSUM,
    FUNCTION_PORT,
    LABEL_COMPONENT,
    LABEL_FUNCTION,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_PART_OF,
    MANAGED_BY,
    RUNTIME_CONTAINER,
)
from hanshu_api.function_contract import function_env, user_env
from hanshu_api.models import FunctionSpec
from hanshu_api.versions import LABEL_VERSION, LABEL_VERSION_OF

from .config import OperatorConfig

CODE_DIR = "/code"
RUNTIME_UID = 10001
TMP_SIZE_LIMIT = "64Mi"


# The standard variable OpenTelemetry's SDK reads (the runtime's tracing.py).
OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"


@dataclass(frozen=True, slots=True)
class VersionOf:
    """Children built for a published version rather than $LATEST: ``name`` is then the
    version's key (``version_key``), and this says whose version it is."""

    function: str
    version: int


def labels(function: str, version_of: VersionOf | None = None) -> dict[str, str]:
    """``function`` is the selector's name: the Function's, or a version's key."""
    found = {
        LABEL_NAME: "hanshu-function",
        LABEL_INSTANCE: function,
        LABEL_COMPONENT: "function",
        LABEL_PART_OF: "hanshu",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_FUNCTION: function,
    }
    if version_of is not None:
        found[LABEL_VERSION_OF] = version_of.function
        found[LABEL_VERSION] = str(version_of.version)
    return found


def selector(function: str) -> dict[str, str]:
    return {LABEL_FUNCTION: function}


def code_config_map_name(function: str) -> str:
    return f"{function}-code"


def function_url(function: str, namespace: str, cluster_domain: str) -> str:
    return f"http://{function}.{namespace}.svc.{cluster_domain}"


def code_checksum(spec: FunctionSpec, referenced_code: Mapping[str, str] | None) -> str:
    """Changes with the code, so a code change rolls the Deployment even though the pod
    template (which only names the ConfigMap) stays the same."""
    code: Mapping[str, Any] = spec.code.inline or referenced_code or {"image": spec.code.image}
    digest = hashlib.sha256(json.dumps(code, sort_keys=True).encode()).hexdigest()
    return digest[:32]


def build_code_config_map(
    name: str, namespace: str, spec: FunctionSpec, version_of: VersionOf | None = None
) -> dict[str, Any] | None:
    if spec.code.inline is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": code_config_map_name(name),
            "namespace": namespace,
            "labels": labels(name, version_of),
        },
        "data": dict(spec.code.inline),
    }


def runtime_env(
    name: str,
    spec: FunctionSpec,
    generation: int | None,
    default_resources: Mapping[str, Any],
    region: str = "",
    otlp_endpoint: str = "",
    version_of: VersionOf | None = None,
) -> list[dict[str, Any]]:
    """The ``HANSHU_*`` contract with hanshu_runtime, the platform's OTLP endpoint (when
    tracing is on and the Function names none of its own), then the user's own variables.

    A published version's replicas say the Function's name and the version's number
    (``context.function_version``), not the name their Deployment runs under."""
    if version_of is not None:
        name, generation = version_of.function, version_of.version
    env = function_env(
        name,
        spec,
        generation=generation,
        default_resources=default_resources,
        code_dir=CODE_DIR,
        region=region or None,
        # Tells the runtime its metrics' version label (LATEST when None).
        published_version=version_of.version if version_of is not None else None,
    )
    # The pod's own namespace (downward API): the context's ARN and log group name it.
    namespace = {
        "name": "HANSHU_NAMESPACE",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
    }
    own = [dict(e) for e in user_env(spec.env)]
    tracing = (
        [{"name": OTLP_ENDPOINT_ENV, "value": otlp_endpoint}]
        if otlp_endpoint and not any(e.get("name") == OTLP_ENDPOINT_ENV for e in own)
        else []
    )
    return [*({"name": k, "value": v} for k, v in env.items()), namespace, *tracing, *own]


def container_security_context() -> dict[str, Any]:
    """The restricted Pod Security Standard for a runtime container: function pods and
    warm pool pods alike (a pool pod becomes a function pod)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUNTIME_UID,
        "runAsGroup": RUNTIME_UID,
        "fsGroup": RUNTIME_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "admin"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 1,
    }


def build_pod_template(
    name: str,
    spec: FunctionSpec,
    config: OperatorConfig,
    checksum: str,
    generation: int | None,
    version_of: VersionOf | None = None,
) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}},
    ]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108
    code_map = code_config_map_name(name) if spec.code.inline is not None else spec.code.config_map
    if code_map is not None:
        volumes.append({"name": "code", "configMap": {"name": code_map}})
        mounts.append({"name": "code", "mountPath": CODE_DIR, "readOnly": True})
    container: dict[str, Any] = {
        "name": RUNTIME_CONTAINER,
        "image": spec.code.image or config.runtime_image,
        "imagePullPolicy": config.image_pull_policy,
        "env": runtime_env(
            name,
            spec,
            generation,
            config.default_resources,
            region=config.function_region,
            otlp_endpoint=config.function_otlp_endpoint,
            version_of=version_of,
        ),
        "ports": [
            {"name": "http", "containerPort": FUNCTION_PORT, "protocol": "TCP"},
            {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
        ],
        # Readiness is polled every second: it gates how soon a cold request is served.
        "readinessProbe": probe("/readyz", period=1, failures=1),
        "livenessProbe": probe("/healthz", period=10, failures=3),
        "startupProbe": probe("/healthz", period=1, failures=60),
        "resources": dict(spec.effective_resources(config.default_resources)),
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": container_security_context(),
    }
    if spec.env_from:
        container["envFrom"] = [dict(e) for e in spec.env_from]
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "volumes": volumes,
        "enableServiceLinks": False,
        # No API token unless the function asks for an identity of its own.
        "automountServiceAccountToken": spec.service_account_name is not None,
        "terminationGracePeriodSeconds": spec.timeout_seconds + 10,
        "securityContext": pod_security_context(),
    }
    if spec.service_account_name:
        pod_spec["serviceAccountName"] = spec.service_account_name
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in spec.tolerations]
    return {
        "metadata": {
            "labels": labels(name, version_of),
            "annotations": {ANNOTATION_CHECKSUM: checksum},
        },
        "spec": pod_spec,
    }


def build_deployment(
    name: str,
    namespace: str,
    spec: FunctionSpec,
    config: OperatorConfig,
    checksum: str,
    generation: int | None,
    version_of: VersionOf | None = None,
) -> dict[str, Any]:
    """The Deployment the operator applies on every reconcile.

    It has no ``spec.replicas``: that field is the autoscaler's (through the scale
    subresource), and a field manager that stops applying a field it owned makes the API
    server remove it; only creation sets it (``with_replicas``, then ``replicas_only``).
    """
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(name, version_of)},
        "spec": {
            "revisionHistoryLimit": 3,
            # How long Kubernetes waits for a ready replica before its Progressing
            # condition says ProgressDeadlineExceeded, which the Function's status reports.
            "progressDeadlineSeconds": config.progress_deadline_seconds,
            "selector": {"matchLabels": selector(name)},
            # Never fewer ready replicas than wanted during a roll-out: no cold requests.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": build_pod_template(name, spec, config, checksum, generation, version_of),
        },
    }


def with_replicas(deployment: Mapping[str, Any], replicas: int) -> dict[str, Any]:
    """The Deployment as first applied: without ``spec.replicas`` the API server would
    default it to 1 and a Function meant to sit at zero would start a pod."""
    return {**deployment, "spec": {**deployment["spec"], "replicas": replicas}}


def replicas_only(deployment: Mapping[str, Any], replicas: int) -> dict[str, Any]:
    """What the autoscaler's field manager applies right after creation, so that it
    co-owns ``spec.replicas`` before the operator's manager stops applying it."""
    meta = deployment["metadata"]
    return {
        "apiVersion": deployment["apiVersion"],
        "kind": deployment["kind"],
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": replicas},
    }


def owns_replicas_alone(deployment: Mapping[str, Any], manager: str) -> bool:
    """Whether, by ``metadata.managedFields``, ``manager`` applied ``spec.replicas`` and
    nobody else holds it: then omitting it from the next apply would remove it."""
    holders = {
        (entry.get("manager"), entry.get("operation"))
        for entry in (deployment.get("metadata") or {}).get("managedFields") or []
        if "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
    }
    return holders == {(manager, "Apply")}


def build_service(name: str, namespace: str, version_of: VersionOf | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(name, version_of)},
        "spec": {
            "type": "ClusterIP",
            "selector": selector(name),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def build_network_policy(
    name: str, namespace: str, config: OperatorConfig, version_of: VersionOf | None = None
) -> dict[str, Any] | None:
    """Function pods take traffic only from the gateway (and metrics scrapes from the
    namespaces named for them); kubelet probes are not subject to NetworkPolicy."""
    if not config.network_policy:
        return None
    ingress: list[dict[str, Any]] = [
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": config.gateway_namespace}
                    },
                    "podSelector": {"matchLabels": dict(config.gateway_pod_labels)},
                }
            ],
            "ports": [{"port": FUNCTION_PORT, "protocol": "TCP"}],
        }
    ]
    if config.metrics_namespaces:
        ingress.append(
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/metadata.name",
                                    "operator": "In",
                                    "values": list(config.metrics_namespaces),
                                }
                            ]
                        }
                    }
                ],
                "ports": [{"port": ADMIN_PORT, "protocol": "TCP"}],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(name, version_of)},
        "spec": {
            "podSelector": {"matchLabels": selector(name)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }
