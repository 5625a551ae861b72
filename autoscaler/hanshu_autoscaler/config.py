"""Autoscaler settings, read once from the environment (the Helm chart sets them).

A bad value stops the process with one line naming the variable (``ConfigError``)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from hanshu_api.settings import ConfigError, above, at_least, choice, names, number, port, text

from .decisions import Policy

__all__ = ["AutoscalerConfig", "ConfigError", "config_from_env"]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True, slots=True)
class AutoscalerConfig:
    # Gateways and dispatchers POST their stats here; /healthz too.
    port: int = 8090
    metrics_port: int = 8000
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    stable_window_seconds: float = 60.0
    panic_window_seconds: float = 6.0
    panic_threshold: float = 2.0
    # The Lease that elects the leader, and this replica's name in it.
    lease_namespace: str = "hanshu-system"
    lease_name: str = "hanshu-autoscaler"
    lease_duration_seconds: float = 4.0
    renew_seconds: float = 1.0
    pod_name: str = ""
    # Where a standby passes reports on to this replica when it leads.
    advertise_url: str = ""
    log_level: str = "INFO"
    # How often the canary controller looks at each canary's figures (a step's interval is
    # judged to within this).
    canary_interval_seconds: float = 1.0

    @property
    def policy(self) -> Policy:
        return Policy(self.stable_window_seconds, self.panic_window_seconds, self.panic_threshold)

    @property
    def identity(self) -> str:
        return f"{self.pod_name}@{self.advertise_url}"


def config_from_env(env: Mapping[str, str] = os.environ) -> AutoscalerConfig:
    """Parse and check every setting; raises ConfigError naming the first bad one."""
    listen = port(env, "HANSHU_AUTOSCALER_PORT", 8090)
    duration = number(env, "HANSHU_LEASE_DURATION_SECONDS", 4.0, above(0), unit="seconds")
    renew = number(env, "HANSHU_LEASE_RENEW_SECONDS", 1.0, above(0), unit="seconds")
    if renew >= duration:
        raise ConfigError(
            "HANSHU_LEASE_RENEW_SECONDS",
            f"is {renew}, not shorter than HANSHU_LEASE_DURATION_SECONDS ({duration})",
            "a number of seconds below the lease duration",
        )
    pod_ip = text(env, "HANSHU_POD_IP", "127.0.0.1")
    host = f"[{pod_ip}]" if ":" in pod_ip else pod_ip
    return AutoscalerConfig(
        port=listen,
        metrics_port=port(env, "HANSHU_AUTOSCALER_METRICS_PORT", 8000, zero="turns it off"),
        namespaces=names(env, "HANSHU_WATCH_NAMESPACES"),
        stable_window_seconds=number(env, "HANSHU_STABLE_WINDOW_SECONDS", 60.0, above(0)),
        panic_window_seconds=number(env, "HANSHU_PANIC_WINDOW_SECONDS", 6.0, above(0)),
        panic_threshold=number(env, "HANSHU_PANIC_THRESHOLD", 2.0, at_least(1)),
        lease_namespace=text(env, "HANSHU_LEASE_NAMESPACE", "hanshu-system"),
        lease_name=text(env, "HANSHU_LEASE_NAME", "hanshu-autoscaler"),
        lease_duration_seconds=duration,
        renew_seconds=renew,
        pod_name=text(env, "HANSHU_POD_NAME", socket.gethostname()),
        advertise_url=f"http://{host}:{listen}",
        log_level=choice(env, "HANSHU_LOG_LEVEL", "INFO", LOG_LEVELS),
        canary_interval_seconds=number(
            env, "HANSHU_CANARY_INTERVAL_SECONDS", 1.0, above(0), unit="seconds"
        ),
    )
