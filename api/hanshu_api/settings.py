"""Settings from the environment, read one way by every component (the runtime keeps its
own stdlib reader: it imports nothing of ours).

Each reader takes ``(env, name, default, bounds)``: a variable that is unset or blank
gives the default, a good one its value, and a bad one a ``ConfigError`` whose single
line names the variable, what is wrong with it and what it takes, so a process refuses
to start with one line instead of failing later inside a handler. The groups below are
what two components read alike and must agree on; each component's config embeds them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any
from urllib.parse import urlsplit

from .durations import parse_duration
from .quantities import parse_quantity

MAX_PORT = 65535
# JetStream keeps 1 to 5 copies of a stream or bucket (one per server of a cluster).
MAX_STREAM_REPLICAS = 5
DEFAULT_FUNCTION_RESOURCES: Mapping[str, Any] = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "256Mi"},
}


class ConfigError(ValueError):
    """A setting a process cannot run with: the variable, what is wrong, what it takes."""

    def __init__(self, variable: str, problem: str, accepted: str) -> None:
        super().__init__(f"{variable} {problem}; set {variable} to {accepted}")
        self.variable = variable


@dataclass(frozen=True, slots=True)
class Bounds:
    """Where a number may lie; ``str()`` says it the way an error message needs."""

    minimum: float | None = None
    maximum: float | None = None
    minimum_excluded: bool = False

    def admits(self, value: float) -> bool:
        if self.minimum is not None and (
            value < self.minimum or (self.minimum_excluded and value == self.minimum)
        ):
            return False
        return self.maximum is None or value <= self.maximum

    def __str__(self) -> str:
        if self.minimum is not None and self.maximum is not None and not self.minimum_excluded:
            return f"from {self.minimum:g} to {self.maximum:g}"
        parts = []
        if self.minimum is not None:
            parts.append(f"{'>' if self.minimum_excluded else '>='} {self.minimum:g}")
        if self.maximum is not None:
            parts.append(f"<= {self.maximum:g}")
        return " and ".join(parts)


POSITIVE = Bounds(minimum=0, minimum_excluded=True)


def at_least(minimum: float) -> Bounds:
    return Bounds(minimum=minimum)


def above(minimum: float) -> Bounds:
    return Bounds(minimum=minimum, minimum_excluded=True)


def between(minimum: float, maximum: float) -> Bounds:
    return Bounds(minimum=minimum, maximum=maximum)


# -- the readers ---------------------------------------------------------------------------


def raw(env: Mapping[str, str], name: str) -> str | None:
    """The variable's value, or None when it is unset or blank (then the default holds)."""
    value = env.get(name, "").strip()
    return value or None


def text(env: Mapping[str, str], name: str, default: str = "") -> str:
    found = raw(env, name)
    return default if found is None else found


def _bounded(
    name: str, found: str, parse: Callable[[str], float], kind: str, bounds: Bounds, accepted: str
) -> float:
    """``found`` parsed and within ``bounds``, or the ConfigError saying which it is not."""
    try:
        value = parse(found)
    except ValueError:
        raise ConfigError(name, f"is {found!r}, not {kind}", accepted) from None
    if (isinstance(value, float) and not math.isfinite(value)) or not bounds.admits(value):
        raise ConfigError(name, f"is {found!r}, out of range", accepted)
    return value


def whole_number(
    env: Mapping[str, str], name: str, default: int, bounds: Bounds, *, unit: str = ""
) -> int:
    found = raw(env, name)
    if found is None:
        return default
    accepted = f"a whole number{f' of {unit}' if unit else ''} {bounds}"
    return int(_bounded(name, found, int, "a whole number", bounds, accepted))


def port(env: Mapping[str, str], name: str, default: int, *, zero: str | None = None) -> int:
    """A TCP port; ``zero`` says what 0 means where 0 is allowed ("turns it off")."""
    found = raw(env, name)
    if found is None:
        return default
    bounds = between(1 if zero is None else 0, MAX_PORT)
    accepted = f"a port number {bounds}{'' if zero is None else f' (0 {zero})'}"
    return int(_bounded(name, found, int, "a whole number", bounds, accepted))


def number(
    env: Mapping[str, str], name: str, default: float, bounds: Bounds, *, unit: str = ""
) -> float:
    found = raw(env, name)
    if found is None:
        return default
    accepted = f"a number{f' of {unit}' if unit else ''} {bounds}"
    return _bounded(name, found, float, "a number", bounds, accepted)


def seconds(env: Mapping[str, str], name: str, default: float, bounds: Bounds = POSITIVE) -> float:
    """A plain number of seconds (for variables whose names end in _SECONDS and the like)."""
    return number(env, name, default, bounds, unit="seconds")


def duration(env: Mapping[str, str], name: str, default: float, bounds: Bounds = POSITIVE) -> float:
    """Seconds, written '90s', '5m', '1h30m', '250ms' or as a plain number of seconds."""
    found = raw(env, name)
    if found is None:
        return default
    accepted = f"a duration {bounds} seconds, such as 30s, 5m, 1h30m or 3600"
    try:
        value = float(found)
    except ValueError:
        try:
            value = parse_duration(found)
        except ValueError:
            raise ConfigError(name, f"is {found!r}, not a duration", accepted) from None
    if not (math.isfinite(value) and bounds.admits(value)):
        raise ConfigError(name, f"is {found!r}, out of range", accepted)
    return value


def http_url(
    env: Mapping[str, str],
    name: str,
    *,
    example: str = "http://host:8080",
    required: bool = False,
) -> str:
    """An http(s) URL with a host, without trailing slashes (callers append paths); empty
    when unset and not required."""
    accepted = f"an http(s) URL such as {example}{'' if required else ', or leave it empty'}"
    found = raw(env, name)
    if found is None:
        if required:
            raise ConfigError(name, "is required", accepted)
        return ""
    try:
        parts = urlsplit(found)
        good = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises ValueError when the port is not a number
    except ValueError:
        good = False
    if not good:
        raise ConfigError(name, f"is {found!r}, not an http(s) URL", accepted)
    return found.rstrip("/")


def nats_url(
    env: Mapping[str, str], name: str, *, required: bool = False, unset_means: str = ""
) -> str:
    """A nats:// or tls:// URL; empty when unset and not required (``unset_means`` says
    what that does, for the message)."""
    accepted = "a nats:// or tls:// URL such as nats://hanshu-nats:4222"
    if not required:
        accepted += f", or leave it empty{f' {unset_means}' if unset_means else ''}"
    found = raw(env, name)
    if found is None:
        if required:
            raise ConfigError(name, "is required", accepted)
        return ""
    if not found.startswith(("nats://", "tls://")) or not urlsplit(found).hostname:
        raise ConfigError(name, f"is {found!r}, not a nats:// or tls:// URL", accepted)
    return found


def networks(env: Mapping[str, str], name: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """A comma-separated list of addresses or CIDR networks (an address is a /32 or /128)."""
    accepted = "a comma-separated list of addresses or networks such as 10.0.0.0/8, or empty"
    found: list[IPv4Network | IPv6Network] = []
    for item in names(env, name):
        try:
            found.append(ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(name, f"has {item!r}, not an address or network", accepted) from None
    return tuple(found)


def names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``, matched without regard to case, returned as written there."""
    found = raw(env, name)
    if found is None:
        return default
    by_folded = {option.lower(): option for option in choices}
    if found.lower() not in by_folded:
        raise ConfigError(name, f"is {found!r}", f"one of {', '.join(choices)}")
    return by_folded[found.lower()]


def boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    return choice(env, name, str(default).lower(), ("true", "false")) == "true"


def json_object(env: Mapping[str, str], name: str, accepted: str) -> dict[str, Any] | None:
    """A JSON object, or None when unset; ``accepted`` describes the object wanted."""
    found = raw(env, name)
    if found is None:
        return None
    try:
        value = json.loads(found)
    except ValueError as error:
        raise ConfigError(name, f"is {found!r}, not valid JSON ({error})", accepted) from None
    if not isinstance(value, dict):
        raise ConfigError(name, f"is {found!r}, not a JSON object", accepted)
    return value


# -- what two components read alike --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NatsSettings:
    """The platform's NATS, as the gateway (which stores async calls) and the dispatcher
    (which runs them) both reach it."""

    # Empty: no NATS (the gateway offers no async invocation; the dispatcher refuses).
    url: str = ""
    # JetStream copies of the stream and buckets (3 on a three-node NATS). Whichever of
    # the gateway and the dispatcher starts first creates them, so both read one rule.
    stream_replicas: int = 1

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        required: bool = False,
        unset_means: str = "to turn async invocation off",
    ) -> NatsSettings:
        return cls(
            url=nats_url(env, "HANSHU_NATS_URL", required=required, unset_means=unset_means),
            stream_replicas=whole_number(
                env, "HANSHU_NATS_REPLICAS", 1, between(1, MAX_STREAM_REPLICAS)
            ),
        )


@dataclass(frozen=True, slots=True)
class AsyncWindows:
    """How long async invocations' records live in their JetStream buckets. The gateway
    and the dispatcher must agree: whichever starts first creates the buckets with them."""

    # How long a status stays readable after its last change.
    status_ttl_seconds: float = 24 * 3600.0
    # A repeated Idempotency-Key within this long returns the first invocation.
    idempotency_window_seconds: float = 3600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AsyncWindows:
        return cls(
            status_ttl_seconds=duration(env, "HANSHU_STATUS_TTL", 24 * 3600.0),
            idempotency_window_seconds=duration(env, "HANSHU_IDEMPOTENCY_WINDOW", 3600.0),
        )


_RESOURCES_ACCEPTED = (
    'a JSON object like {"requests": {"cpu": "100m", "memory": "128Mi"}, '
    '"limits": {"memory": "256Mi"}} (the chart sets functionDefaults.resources)'
)


@dataclass(frozen=True, slots=True)
class FunctionDefaults:
    """What a Function without its own resources gets: the operator builds its pods with
    them and the gateway meters it by them, so both read one rule."""

    resources: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_FUNCTION_RESOURCES))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FunctionDefaults:
        name = "HANSHU_DEFAULT_RESOURCES"
        value = json_object(env, name, _RESOURCES_ACCEPTED)
        if value is None:
            return cls()
        for section, quantities in value.items():
            if section not in ("requests", "limits") or not isinstance(quantities, dict):
                problem = f"has {section!r}, not requests or limits"
                raise ConfigError(name, problem, _RESOURCES_ACCEPTED)
            for resource, quantity in quantities.items():
                try:
                    parse_quantity(quantity)
                except (ValueError, AttributeError, TypeError):
                    problem = f"has {section}.{resource}={quantity!r}, not a quantity"
                    raise ConfigError(name, problem, _RESOURCES_ACCEPTED) from None
        return cls(resources=value)
