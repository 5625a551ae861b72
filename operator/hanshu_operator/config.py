"""Operator settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_RESOURCES: Mapping[str, Any] = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "256Mi"},
}


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    runtime_image: str = "hanshu/runtime:dev"
    image_pull_policy: str = "IfNotPresent"
    # Where the gateway serves HTTP Triggers; empty while no gateway is installed, and the
    # Trigger status says so instead of pretending.
    gateway_url: str = ""
    cluster_domain: str = "cluster.local"
    namespaces: tuple[str, ...] = ()
    default_resources: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    metrics_port: int = 8000
    liveness_port: int = 8080
    retry_delay_seconds: float = 15.0
    # Gateways POST their stats here; 0 turns the autoscaler off.
    autoscaler_port: int = 8090
    stable_window_seconds: float = 60.0
    panic_window_seconds: float = 6.0
    panic_threshold: float = 2.0
    # Where schedules fire: the gateway's internal port (/_hanshu/invoke/...).
    gateway_internal_url: str = ""
    # A NetworkPolicy per Function: ingress only from the gateway's pods.
    network_policy: bool = False
    gateway_namespace: str = "hanshu-system"
    gateway_pod_labels: Mapping[str, str] = field(default_factory=dict)
    metrics_namespaces: tuple[str, ...] = ()


def config_from_env(env: Mapping[str, str] = os.environ) -> OperatorConfig:
    namespaces = tuple(
        n.strip() for n in env.get("HANSHU_WATCH_NAMESPACES", "").split(",") if n.strip()
    )
    resources = env.get("HANSHU_DEFAULT_RESOURCES")
    return OperatorConfig(
        runtime_image=env.get("HANSHU_RUNTIME_IMAGE", "hanshu/runtime:dev"),
        image_pull_policy=env.get("HANSHU_IMAGE_PULL_POLICY", "IfNotPresent"),
        gateway_url=env.get("HANSHU_GATEWAY_URL", "").rstrip("/"),
        cluster_domain=env.get("HANSHU_CLUSTER_DOMAIN", "cluster.local"),
        namespaces=namespaces,
        default_resources=json.loads(resources) if resources else dict(DEFAULT_RESOURCES),
        metrics_port=int(env.get("HANSHU_OPERATOR_METRICS_PORT", "8000")),
        liveness_port=int(env.get("HANSHU_OPERATOR_LIVENESS_PORT", "8080")),
        retry_delay_seconds=float(env.get("HANSHU_RETRY_DELAY_SECONDS", "15")),
        autoscaler_port=int(env.get("HANSHU_AUTOSCALER_PORT", "8090")),
        stable_window_seconds=float(env.get("HANSHU_STABLE_WINDOW_SECONDS", "60")),
        panic_window_seconds=float(env.get("HANSHU_PANIC_WINDOW_SECONDS", "6")),
        panic_threshold=float(env.get("HANSHU_PANIC_THRESHOLD", "2")),
        gateway_internal_url=env.get("HANSHU_GATEWAY_INTERNAL_URL", "").rstrip("/"),
        network_policy=env.get("HANSHU_NETWORK_POLICY", "false").lower() == "true",
        gateway_namespace=env.get("HANSHU_GATEWAY_NAMESPACE", "hanshu-system"),
        gateway_pod_labels=json.loads(env.get("HANSHU_GATEWAY_POD_LABELS") or "{}"),
        metrics_namespaces=tuple(
            n.strip() for n in env.get("HANSHU_METRICS_NAMESPACES", "").split(",") if n.strip()
        ),
    )
