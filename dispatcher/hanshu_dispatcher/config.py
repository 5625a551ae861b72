"""The dispatcher's settings, from the environment; a bad one names the variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from hanshu_api import INTERNAL_TOKEN_ENV
from hanshu_api.settings import (
    AsyncWindows,
    ConfigError,
    NatsSettings,
    at_least,
    http_url,
    port,
    seconds,
    text,
    whole_number,
)

__all__ = ["ConfigError", "DispatcherConfig", "config_from_env"]


@dataclass(frozen=True, slots=True)
class DispatcherConfig:
    # The gateway reads the same two groups: whichever starts first creates the stream
    # and buckets with them.
    nats: NatsSettings
    gateway_internal_url: str
    windows: AsyncWindows = field(default_factory=AsyncWindows)
    autoscaler_url: str = ""
    # Invocations this dispatcher runs at once per Function; the gateway's cold queue and
    # per-replica concurrency still bound what reaches the replicas.
    concurrency: int = 100
    # Held by heartbeats while an attempt runs, so a long job is never redelivered; what
    # a dispatcher that died leaves is redelivered this long after its last heartbeat.
    ack_wait_seconds: float = 30.0
    # A stream record a dead dispatcher held is handed out again this long after its last
    # heartbeat (JetStream's ack wait, Redis's XAUTOCLAIM idle time): short, so an ordered
    # Trigger's reader is replaced within seconds (its next holder waits for that batch).
    stream_hold_seconds: float = 5.0
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    # Margin over the Function's timeout for the gateway's cold start and queue.
    call_margin_seconds: float = 90.0
    discover_interval_seconds: float = 1.0
    report_interval_seconds: float = 1.0
    port: int = 8082
    host: str = "0.0.0.0"
    internal_token: str = ""  # the gateway's internal paths take calls only with it


def config_from_env(env: Mapping[str, str] = os.environ) -> DispatcherConfig:
    """Parse and check every setting; a bad one is a ConfigError naming the variable."""
    return DispatcherConfig(
        nats=NatsSettings.from_env(env, required=True),
        windows=AsyncWindows.from_env(env),
        gateway_internal_url=http_url(
            env, "HANSHU_GATEWAY_INTERNAL_URL", example="http://hanshu-gateway:8081", required=True
        ),
        autoscaler_url=http_url(
            env, "HANSHU_AUTOSCALER_URL", example="http://hanshu-autoscaler:8090"
        ),
        concurrency=whole_number(env, "HANSHU_DISPATCH_CONCURRENCY", 100, at_least(1)),
        ack_wait_seconds=seconds(env, "HANSHU_ACK_WAIT_SECONDS", 30.0, at_least(1)),
        stream_hold_seconds=seconds(env, "HANSHU_STREAM_HOLD_SECONDS", 5.0, at_least(1)),
        retry_base_seconds=seconds(env, "HANSHU_RETRY_BASE_SECONDS", 2.0, at_least(0.01)),
        retry_max_seconds=seconds(env, "HANSHU_RETRY_MAX_SECONDS", 300.0, at_least(0.01)),
        call_margin_seconds=seconds(env, "HANSHU_CALL_MARGIN_SECONDS", 90.0, at_least(1)),
        discover_interval_seconds=seconds(env, "HANSHU_DISCOVER_INTERVAL", 1.0, at_least(0.05)),
        port=port(env, "HANSHU_DISPATCHER_PORT", 8082, zero="picks a free port"),
        host=text(env, "HANSHU_DISPATCHER_HOST", "0.0.0.0"),
        internal_token=text(env, INTERNAL_TOKEN_ENV),
    )
