"""The dispatcher's settings, from the environment; a bad one names the variable."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass


class ConfigError(Exception):
    """A bad setting: ``python -m hanshu_dispatcher`` exits with this one line."""


@dataclass(frozen=True, slots=True)
class DispatcherConfig:
    nats_url: str
    gateway_internal_url: str
    autoscaler_url: str = ""
    # Invocations this dispatcher runs at once per Function; the gateway's cold queue and
    # per-replica concurrency still bound what reaches the replicas.
    concurrency: int = 100
    # Held by heartbeats while an attempt runs, so a long job is never redelivered; what
    # a dispatcher that died leaves is redelivered this long after its last heartbeat.
    ack_wait_seconds: float = 30.0
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    # Margin over the Function's timeout for the gateway's cold start and queue.
    call_margin_seconds: float = 90.0
    discover_interval_seconds: float = 1.0
    report_interval_seconds: float = 1.0
    port: int = 8082
    host: str = "0.0.0.0"
    stream_replicas: int = 1
    internal_token: str = ""  # the gateway's internal paths take calls only with it
    # The same as the gateway's: whichever starts first creates the buckets with them.
    status_ttl_seconds: float = 24 * 3600.0
    idempotency_window_seconds: float = 3600.0


def _text(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = _text(env, name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= minimum):
        raise ConfigError(f"{name}={raw!r} is not valid: set it to a number >= {minimum:g}")
    return value


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...], *, required: bool) -> str:
    raw = _text(env, name)
    if not raw:
        if required:
            raise ConfigError(f"{name} is required: set it to a {'/'.join(schemes)} URL")
        return ""
    if not any(raw.startswith(f"{scheme}://") for scheme in schemes):
        raise ConfigError(f"{name}={raw!r} is not valid: set it to a {'/'.join(schemes)} URL")
    return raw


def config_from_env(env: Mapping[str, str] = os.environ) -> DispatcherConfig:
    return DispatcherConfig(
        nats_url=_url(env, "HANSHU_NATS_URL", ("nats", "tls"), required=True),
        gateway_internal_url=_url(
            env, "HANSHU_GATEWAY_INTERNAL_URL", ("http", "https"), required=True
        ),
        autoscaler_url=_url(env, "HANSHU_AUTOSCALER_URL", ("http", "https"), required=False),
        concurrency=int(_number(env, "HANSHU_DISPATCH_CONCURRENCY", 100, minimum=1)),
        ack_wait_seconds=_number(env, "HANSHU_ACK_WAIT_SECONDS", 30.0, minimum=1),
        retry_base_seconds=_number(env, "HANSHU_RETRY_BASE_SECONDS", 2.0, minimum=0.01),
        retry_max_seconds=_number(env, "HANSHU_RETRY_MAX_SECONDS", 300.0, minimum=0.01),
        call_margin_seconds=_number(env, "HANSHU_CALL_MARGIN_SECONDS", 90.0, minimum=1),
        discover_interval_seconds=_number(env, "HANSHU_DISCOVER_INTERVAL", 1.0, minimum=0.05),
        port=int(_number(env, "HANSHU_DISPATCHER_PORT", 8082, minimum=0)),
        host=_text(env, "HANSHU_DISPATCHER_HOST") or "0.0.0.0",
        stream_replicas=int(_number(env, "HANSHU_NATS_REPLICAS", 1, minimum=1)),
        internal_token=_text(env, "HANSHU_INTERNAL_TOKEN"),
        status_ttl_seconds=_number(env, "HANSHU_STATUS_TTL", 24 * 3600.0, minimum=1),
        idempotency_window_seconds=_number(env, "HANSHU_IDEMPOTENCY_WINDOW", 3600.0, minimum=1),
    )
