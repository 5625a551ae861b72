"""Operator settings, read once from the environment (the Helm chart sets them).

Every value is checked here, before anything connects: a bad one stops the operator with
one line naming the variable and what it accepts (``ConfigError``), not a traceback from
deep inside a handler.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hanshu_api.quantities import parse_quantity

DEFAULT_RESOURCES: Mapping[str, Any] = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "256Mi"},
}
IMAGE_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_MAX_PORT = 65535


class ConfigError(ValueError):
    """A setting the operator cannot run with: the variable, what is wrong, what it takes."""

    def __init__(self, variable: str, problem: str, accepted: str) -> None:
        super().__init__(f"{variable} {problem}; set {variable} to {accepted}")
        self.variable = variable


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
    # A Deployment with no replica ready after this long says ProgressDeadlineExceeded
    # (Kubernetes' default, 600 s, is ten minutes of 'Starting' for a user to stare at).
    progress_deadline_seconds: int = 180
    # Gateways POST their stats here; 0 turns the autoscaler off.
    autoscaler_port: int = 8090
    stable_window_seconds: float = 60.0
    panic_window_seconds: float = 6.0
    panic_threshold: float = 2.0
    # Where schedules fire: the gateway's internal port (/_hanshu/invoke/...).
    gateway_internal_url: str = ""
    # The platform's NATS: a stream Trigger's default source server, subject destinations.
    nats_url: str = ""
    internal_token: str = ""  # the gateway's internal paths take calls only with it
    # A NetworkPolicy per Function: ingress only from the gateway's pods.
    network_policy: bool = False
    gateway_namespace: str = "hanshu-system"
    gateway_pod_labels: Mapping[str, str] = field(default_factory=dict)
    metrics_namespaces: tuple[str, ...] = ()
    log_level: str = "INFO"


def _raw(env: Mapping[str, str], name: str) -> str | None:
    """The variable's value, or None when it is unset or blank (then the default holds)."""
    raw = env.get(name, "").strip()
    return raw or None


def _number(
    env: Mapping[str, str], name: str, default: float, *, minimum: float, exclusive: bool = False
) -> float:
    raw = _raw(env, name)
    if raw is None:
        return default
    accepted = f"a number {'>' if exclusive else '>='} {minimum:g}"
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"is {raw!r}, not a number", accepted) from None
    if not math.isfinite(value) or value < minimum or (exclusive and value == minimum):
        raise ConfigError(name, f"is {raw!r}, out of range", accepted)
    return value


def _whole_seconds(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _raw(env, name)
    if raw is None:
        return default
    accepted = "a whole number of seconds >= 1"
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"is {raw!r}, not a whole number", accepted) from None
    if value < 1:
        raise ConfigError(name, f"is {raw!r}, out of range", accepted)
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _raw(env, name)
    if raw is None:
        return default
    accepted = f"a port number from 0 to {_MAX_PORT} (0 turns it off)"
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"is {raw!r}, not a whole number", accepted) from None
    if not 0 <= value <= _MAX_PORT:
        raise ConfigError(name, f"is {raw!r}, out of range", accepted)
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = _raw(env, name)
    if raw is None:
        return default
    by_folded = {choice.lower(): choice for choice in choices}
    if raw.lower() not in by_folded:
        raise ConfigError(name, f"is {raw!r}", f"one of {', '.join(choices)}")
    return by_folded[raw.lower()]


def _boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    chosen = _choice(env, name, str(default).lower(), ("true", "false"))
    return chosen == "true"


def _json_object(env: Mapping[str, str], name: str, accepted: str) -> dict[str, Any] | None:
    raw = _raw(env, name)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError as error:
        raise ConfigError(name, f"is not valid JSON ({error})", accepted) from None
    if not isinstance(value, dict):
        raise ConfigError(name, "is not a JSON object", accepted)
    return value


def _resources(env: Mapping[str, str], name: str) -> Mapping[str, Any]:
    accepted = (
        'a JSON object like {"requests": {"cpu": "100m", "memory": "128Mi"}, '
        '"limits": {"memory": "256Mi"}}'
    )
    value = _json_object(env, name, accepted)
    if value is None:
        return dict(DEFAULT_RESOURCES)
    for section, quantities in value.items():
        if section not in ("requests", "limits") or not isinstance(quantities, dict):
            raise ConfigError(name, f"has {section!r}, not requests or limits", accepted)
        for resource, quantity in quantities.items():
            try:
                parse_quantity(quantity)
            except (ValueError, AttributeError):
                problem = f"has {section}.{resource}={quantity!r}, not a quantity"
                raise ConfigError(name, problem, accepted) from None
    return value


def _labels(env: Mapping[str, str], name: str) -> Mapping[str, str]:
    accepted = 'a JSON object of label keys to strings, like {"app": "gateway"}'
    value = _json_object(env, name, accepted) or {}
    if not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(name, "has a label value that is not a string", accepted)
    return value


def _names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in env.get(name, "").split(",") if n.strip())


def config_from_env(env: Mapping[str, str] = os.environ) -> OperatorConfig:
    """Parse and check every setting; raises ConfigError naming the first bad one."""
    return OperatorConfig(
        runtime_image=_raw(env, "HANSHU_RUNTIME_IMAGE") or "hanshu/runtime:dev",
        image_pull_policy=_choice(
            env, "HANSHU_IMAGE_PULL_POLICY", "IfNotPresent", IMAGE_PULL_POLICIES
        ),
        gateway_url=env.get("HANSHU_GATEWAY_URL", "").strip().rstrip("/"),
        cluster_domain=_raw(env, "HANSHU_CLUSTER_DOMAIN") or "cluster.local",
        namespaces=_names(env, "HANSHU_WATCH_NAMESPACES"),
        default_resources=_resources(env, "HANSHU_DEFAULT_RESOURCES"),
        metrics_port=_port(env, "HANSHU_OPERATOR_METRICS_PORT", 8000),
        liveness_port=_port(env, "HANSHU_OPERATOR_LIVENESS_PORT", 8080),
        retry_delay_seconds=_number(env, "HANSHU_RETRY_DELAY_SECONDS", 15.0, minimum=0),
        progress_deadline_seconds=_whole_seconds(env, "HANSHU_PROGRESS_DEADLINE_SECONDS", 180),
        autoscaler_port=_port(env, "HANSHU_AUTOSCALER_PORT", 8090),
        stable_window_seconds=_number(
            env, "HANSHU_STABLE_WINDOW_SECONDS", 60.0, minimum=0, exclusive=True
        ),
        panic_window_seconds=_number(
            env, "HANSHU_PANIC_WINDOW_SECONDS", 6.0, minimum=0, exclusive=True
        ),
        panic_threshold=_number(env, "HANSHU_PANIC_THRESHOLD", 2.0, minimum=1),
        gateway_internal_url=env.get("HANSHU_GATEWAY_INTERNAL_URL", "").strip().rstrip("/"),
        nats_url=env.get("HANSHU_NATS_URL", "").strip(),
        internal_token=env.get("HANSHU_INTERNAL_TOKEN", "").strip(),
        network_policy=_boolean(env, "HANSHU_NETWORK_POLICY", False),
        gateway_namespace=_raw(env, "HANSHU_GATEWAY_NAMESPACE") or "hanshu-system",
        gateway_pod_labels=_labels(env, "HANSHU_GATEWAY_POD_LABELS"),
        metrics_namespaces=_names(env, "HANSHU_METRICS_NAMESPACES"),
        log_level=_choice(env, "HANSHU_LOG_LEVEL", "INFO", LOG_LEVELS),
    )
