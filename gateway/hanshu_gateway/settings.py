"""The gateway's settings, read once from HANSHU_* variables: a bad one is a ConfigError
naming the variable (``python -m hanshu_gateway`` exits with that one line)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network

from hanshu_api import INTERNAL_TOKEN_ENV
from yarl import URL


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    internal_port: int = 8081
    max_body_bytes: int = 6 * 1024 * 1024
    queue_limit: int = 1000
    cold_start_timeout: float = 60.0
    read_timeout: float = 30.0
    header_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    autoscaler_url: str = ""
    stats_interval: float = 1.0
    # Async invocation stores events in NATS JetStream: none configured, none offered.
    nats_url: str = ""
    idempotency_window: float = 3600.0
    status_ttl: float = 24 * 3600.0
    nats_replicas: int = 1  # JetStream copies of the stream and buckets (3 on a 3-node NATS)
    # Hosts besides AWS SNS' own that an SNS SubscribeURL may point at.
    sns_confirm_hosts: tuple[str, ...] = ()
    # Required on the internal invoke, enqueue and dispatch paths when set (the chart sets it).
    internal_token: str = ""
    # Proxies in front (an ingress ending TLS) whose X-Forwarded-For and -Proto are kept;
    # from any other peer the gateway sets them alone.
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()


class ConfigError(Exception):
    """A bad setting: ``python -m hanshu_gateway`` exits with this one line."""


def _setting(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    return raw or None


def _whole_number(
    env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    raw = _setting(env, name)
    if raw is None:
        return default
    accepted = f"a whole number >= {minimum}"
    if maximum is not None:
        accepted = f"a whole number from {minimum} to {maximum}"
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not valid: set it to {accepted}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise ConfigError(f"{name}={raw!r} is out of range: set it to {accepted}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _setting(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name}={raw!r} is not valid: set it to a number of seconds > 0")
    return value


def _http_url(env: Mapping[str, str], name: str) -> str:
    raw = _setting(env, name)
    if raw is None:
        return ""
    try:
        url = URL(raw)
    except ValueError:
        url = URL()
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            f"{name}={raw!r} is not valid: set it to an http(s) URL such as "
            "http://hanshu-operator:8090, or leave it empty"
        )
    return raw


def _nats_url(env: Mapping[str, str], name: str) -> str:
    raw = _setting(env, name)
    if raw is None:
        return ""
    if not raw.startswith(("nats://", "tls://")):
        raise ConfigError(
            f"{name}={raw!r} is not valid: set it to a nats:// or tls:// URL such as "
            "nats://hanshu-nats:4222, or leave it empty to turn async invocation off"
        )
    return raw


def _networks(env: Mapping[str, str], name: str) -> tuple[IPv4Network | IPv6Network, ...]:
    networks = []
    for item in env.get(name, "").split(","):
        if item.strip():
            try:
                networks.append(ip_network(item.strip(), strict=False))
            except ValueError:
                raise ConfigError(
                    f"{name}: {item.strip()!r} is not an address or network such as "
                    "10.0.0.0/8; set a comma-separated list, or leave it empty"
                ) from None
    return tuple(networks)


def config_from_env(env: Mapping[str, str] = os.environ) -> GatewayConfig:
    """Parse and check every setting; a bad one is a ConfigError naming the variable."""
    return GatewayConfig(
        host=_setting(env, "HANSHU_GATEWAY_HOST") or "0.0.0.0",
        port=_whole_number(env, "HANSHU_GATEWAY_PORT", 8080, minimum=1, maximum=65535),
        internal_port=_whole_number(
            env, "HANSHU_GATEWAY_INTERNAL_PORT", 8081, minimum=1, maximum=65535
        ),
        max_body_bytes=_whole_number(env, "HANSHU_MAX_BODY_BYTES", 6 * 1024 * 1024, minimum=0),
        queue_limit=_whole_number(env, "HANSHU_QUEUE_LIMIT", 1000, minimum=1),
        cold_start_timeout=_seconds(env, "HANSHU_COLD_START_TIMEOUT", 60.0),
        read_timeout=_seconds(env, "HANSHU_READ_TIMEOUT", 30.0),
        header_timeout=_seconds(env, "HANSHU_HEADER_TIMEOUT", 10.0),
        autoscaler_url=_http_url(env, "HANSHU_AUTOSCALER_URL"),
        stats_interval=_seconds(env, "HANSHU_STATS_INTERVAL", 1.0),
        nats_url=_nats_url(env, "HANSHU_NATS_URL"),
        idempotency_window=_seconds(env, "HANSHU_IDEMPOTENCY_WINDOW", 3600.0),
        status_ttl=_seconds(env, "HANSHU_STATUS_TTL", 24 * 3600.0),
        nats_replicas=_whole_number(env, "HANSHU_NATS_REPLICAS", 1, minimum=1, maximum=5),
        internal_token=env.get(INTERNAL_TOKEN_ENV, "").strip(),
        trusted_proxies=_networks(env, "HANSHU_TRUSTED_PROXIES"),
        sns_confirm_hosts=tuple(
            h.strip().lower()
            for h in env.get("HANSHU_SNS_CONFIRM_HOSTS", "").split(",")
            if h.strip()
        ),
    )


__all__ = ["ConfigError", "GatewayConfig", "config_from_env"]
