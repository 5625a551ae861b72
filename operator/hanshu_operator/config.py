"""Operator settings, read once from the environment (the Helm chart sets them).

Every value is checked here, before anything connects: a bad one stops the operator with
one line naming the variable and what it accepts (``ConfigError``), not a traceback from
deep inside a handler. The readers and the shared groups are ``hanshu_api.settings``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hanshu_api import INTERNAL_TOKEN_ENV
from hanshu_api.event_sources import WatchableKind, watchable_kinds_from_env
from hanshu_api.pool_settings import WarmPoolSettings
from hanshu_api.settings import (
    DEFAULT_FUNCTION_RESOURCES,
    ConfigError,
    FunctionDefaults,
    NatsSettings,
    at_least,
    boolean,
    choice,
    json_object,
    names,
    number,
    port,
    text,
    whole_number,
)

__all__ = ["ConfigError", "OperatorConfig", "config_from_env"]

DEFAULT_RESOURCES = DEFAULT_FUNCTION_RESOURCES
IMAGE_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_PORT_OFF = "turns it off"


@dataclass(frozen=True, slots=True)
class OperatorConfig:
    runtime_image: str = "hanshu/runtime:dev"
    image_pull_policy: str = "IfNotPresent"
    # Where the gateway serves HTTP Triggers; empty while no gateway is installed, and the
    # Trigger status says so instead of pretending.
    gateway_url: str = ""
    # The chart's gateway.watchableKinds: kubernetes Triggers on other kinds are not Ready.
    watchable_kinds: Mapping[tuple[str, str], WatchableKind] = field(default_factory=dict)
    cluster_domain: str = "cluster.local"
    namespaces: tuple[str, ...] = ()
    default_resources: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    # The region Functions are told (AWS_REGION, AWS_DEFAULT_REGION); "" tells none.
    function_region: str = ""
    metrics_port: int = 8000
    liveness_port: int = 8080
    retry_delay_seconds: float = 15.0
    # A Deployment with no replica ready after this long says ProgressDeadlineExceeded
    # (Kubernetes' default, 600 s, is ten minutes of 'Starting' for a user to stare at).
    progress_deadline_seconds: int = 180
    # The platform's NATS: where schedule and stream Triggers go to the dispatchers (and
    # a stream Trigger's default source server); the same rule as the dispatchers' for the
    # buckets' copies, whichever creates them first.
    nats: NatsSettings = field(default_factory=NatsSettings)
    internal_token: str = ""  # the gateway's internal paths take calls only with it
    # A NetworkPolicy per Function: ingress only from the gateway's pods.
    network_policy: bool = False
    gateway_namespace: str = "hanshu-system"
    gateway_pod_labels: Mapping[str, str] = field(default_factory=dict)
    metrics_namespaces: tuple[str, ...] = ()
    log_level: str = "INFO"
    # The chart's warmPool: the namespaces that keep a pool of generic runtime pods.
    warm_pools: WarmPoolSettings = field(default_factory=WarmPoolSettings)
    # A specialized pool pod older than this is deleted, whatever else holds: the gateway
    # that claimed it retires it when the Function's replicas are ready, unless it died.
    warm_pool_specialized_seconds: float = 600.0
    # The chart's tracing.otlpEndpoint: every Function's pods get it as
    # OTEL_EXPORTER_OTLP_ENDPOINT (unless the Function sets its own). Empty: none.
    function_otlp_endpoint: str = ""


def _labels(env: Mapping[str, str], name: str) -> Mapping[str, str]:
    accepted = 'a JSON object of label keys to strings, like {"app": "gateway"}'
    value = json_object(env, name, accepted) or {}
    if not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(name, "has a label value that is not a string", accepted)
    return value


def config_from_env(env: Mapping[str, str] = os.environ) -> OperatorConfig:
    """Parse and check every setting; raises ConfigError naming the first bad one."""
    runtime_image = text(env, "HANSHU_RUNTIME_IMAGE", "hanshu/runtime:dev")
    config = _read_config(env, runtime_image)
    if config.warm_pools.enabled and not config.gateway_pod_labels:
        # The pool's NetworkPolicy admits the gateway's pods by these labels: without them
        # it would admit every pod of the gateway's namespace to the specialize port.
        raise ConfigError(
            "HANSHU_GATEWAY_POD_LABELS",
            "is unset while warm pools are on",
            'the gateway pods\' labels as JSON, like {"app.kubernetes.io/component": '
            '"gateway"} (the chart sets them)',
        )
    return config


def _read_config(env: Mapping[str, str], runtime_image: str) -> OperatorConfig:
    return OperatorConfig(
        runtime_image=runtime_image,
        image_pull_policy=choice(
            env, "HANSHU_IMAGE_PULL_POLICY", "IfNotPresent", IMAGE_PULL_POLICIES
        ),
        # Only shown in Trigger statuses, and the chart's gateway.publicUrl has never had to
        # be a full URL: not refused here (a scheme-less one would stop the operator).
        gateway_url=text(env, "HANSHU_GATEWAY_URL").rstrip("/"),
        watchable_kinds=watchable_kinds_from_env(env),
        cluster_domain=text(env, "HANSHU_CLUSTER_DOMAIN", "cluster.local"),
        namespaces=names(env, "HANSHU_WATCH_NAMESPACES"),
        default_resources=FunctionDefaults.from_env(env).resources,
        function_region=text(env, "HANSHU_FUNCTION_REGION"),
        metrics_port=port(env, "HANSHU_OPERATOR_METRICS_PORT", 8000, zero=_PORT_OFF),
        liveness_port=port(env, "HANSHU_OPERATOR_LIVENESS_PORT", 8080, zero=_PORT_OFF),
        retry_delay_seconds=number(env, "HANSHU_RETRY_DELAY_SECONDS", 15.0, at_least(0)),
        progress_deadline_seconds=whole_number(
            env, "HANSHU_PROGRESS_DEADLINE_SECONDS", 180, at_least(1), unit="seconds"
        ),
        nats=NatsSettings.from_env(
            env, unset_means="(schedule and stream Triggers then reach no dispatcher)"
        ),
        internal_token=text(env, INTERNAL_TOKEN_ENV),
        network_policy=boolean(env, "HANSHU_NETWORK_POLICY", False),
        gateway_namespace=text(env, "HANSHU_GATEWAY_NAMESPACE", "hanshu-system"),
        gateway_pod_labels=_labels(env, "HANSHU_GATEWAY_POD_LABELS"),
        metrics_namespaces=names(env, "HANSHU_METRICS_NAMESPACES"),
        log_level=choice(env, "HANSHU_LOG_LEVEL", "INFO", LOG_LEVELS),
        warm_pools=WarmPoolSettings.from_env(env, runtime_image),
        warm_pool_specialized_seconds=number(
            env, "HANSHU_WARM_POOL_SPECIALIZED_SECONDS", 600.0, at_least(1), unit="seconds"
        ),
        function_otlp_endpoint=text(env, "HANSHU_FUNCTION_OTLP_ENDPOINT"),
    )
