"""The gateway's settings, read once from HANSHU_* variables through hanshu_api.settings:
a bad one is a ConfigError naming the variable (``python -m hanshu_gateway`` exits with that
one line). NATS and the async windows are the groups the dispatcher reads by the same rule."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network

from hanshu_api import INTERNAL_TOKEN_ENV
from hanshu_api.function_contract import MAX_BODY_BYTES
from hanshu_api.settings import (
    AsyncWindows,
    ConfigError,
    NatsSettings,
    at_least,
    http_url,
    names,
    networks,
    port,
    seconds,
    text,
    whole_number,
)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    internal_port: int = 8081
    max_body_bytes: int = MAX_BODY_BYTES
    queue_limit: int = 1000
    cold_start_timeout: float = 60.0
    read_timeout: float = 30.0
    header_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    autoscaler_url: str = ""
    stats_interval: float = 1.0
    # Async invocation stores events in NATS JetStream: no URL, no async invocation.
    nats: NatsSettings = field(default_factory=NatsSettings)
    windows: AsyncWindows = field(default_factory=AsyncWindows)
    # Hosts besides AWS SNS' own that an SNS SubscribeURL may point at.
    sns_confirm_hosts: tuple[str, ...] = ()
    # Whether a caller refused for a replica fault is told its details (dev mode: the
    # caller owns the Function; in a cluster the details are the owner's, in its status).
    fault_details: bool = False
    # Required on the internal invoke, enqueue and dispatch paths when set (the chart sets it).
    internal_token: str = ""
    # Proxies in front (an ingress ending TLS) whose X-Forwarded-For and -Proto are kept;
    # from any other peer the gateway sets them alone.
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()


def config_from_env(env: Mapping[str, str] = os.environ) -> GatewayConfig:
    """Parse and check every setting; a bad one is a ConfigError naming the variable."""
    return GatewayConfig(
        host=text(env, "HANSHU_GATEWAY_HOST", "0.0.0.0"),
        port=port(env, "HANSHU_GATEWAY_PORT", 8080),
        internal_port=port(env, "HANSHU_GATEWAY_INTERNAL_PORT", 8081),
        max_body_bytes=whole_number(
            env, "HANSHU_MAX_BODY_BYTES", MAX_BODY_BYTES, at_least(0), unit="bytes"
        ),
        queue_limit=whole_number(env, "HANSHU_QUEUE_LIMIT", 1000, at_least(1)),
        cold_start_timeout=seconds(env, "HANSHU_COLD_START_TIMEOUT", 60.0),
        read_timeout=seconds(env, "HANSHU_READ_TIMEOUT", 30.0),
        header_timeout=seconds(env, "HANSHU_HEADER_TIMEOUT", 10.0),
        autoscaler_url=http_url(
            env, "HANSHU_AUTOSCALER_URL", example="http://hanshu-autoscaler:8090"
        ),
        stats_interval=seconds(env, "HANSHU_STATS_INTERVAL", 1.0),
        nats=NatsSettings.from_env(env),
        windows=AsyncWindows.from_env(env),
        internal_token=text(env, INTERNAL_TOKEN_ENV),
        trusted_proxies=networks(env, "HANSHU_TRUSTED_PROXIES"),
        sns_confirm_hosts=tuple(h.lower() for h in names(env, "HANSHU_SNS_CONFIRM_HOSTS")),
    )


__all__ = ["ConfigError", "GatewayConfig", "config_from_env"]
