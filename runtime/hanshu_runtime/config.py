"""Runtime settings, read once from ``HANSHU_*`` environment variables.

The variable names are the contract between the operator (which sets them on every
function pod) and this runtime.

The other components read their settings through ``hanshu_api.settings``; the runtime
keeps this small stdlib reader of its own because it imports nothing of ours (its image
holds no ``hanshu_api``, and importing that reader would roughly double this module's
import time, which every cold start pays).
"""

from __future__ import annotations

import enum
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from .faults import ConfigError

# AWS Lambda's synchronous payload limit; = hanshu_api.function_contract.MAX_BODY_BYTES (the
# runtime imports nothing of ours: tests/unit/test_function_contract.py keeps them equal).
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024
DEFAULT_CONCURRENCY = 100
# What a pod with no memory limit or request reports: hanshu_api.models.DEFAULT_MEMORY_MB,
# which the runtime cannot import (a test keeps the two equal). The operator always sets
# HANSHU_MEMORY_MB; this holds where nothing does (a runtime started by hand).
DEFAULT_MEMORY_MB = 256


class HandlerType(enum.StrEnum):
    EVENT = "event"
    WSGI = "wsgi"
    ASGI = "asgi"


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    handler: str
    handler_type: HandlerType = HandlerType.EVENT
    code_dir: str = "/code"
    initializer: str | None = None
    timeout_seconds: float = 30.0
    initializer_timeout_seconds: float = 30.0
    concurrency: int = DEFAULT_CONCURRENCY
    host: str = "0.0.0.0"
    port: int = 8080
    admin_port: int = 9090
    function_name: str = "function"
    function_version: str = "$LATEST"
    namespace: str = "default"
    # The pod (Kubernetes sets HOSTNAME to its name): context.log_stream_name.
    instance: str = "local"
    memory_mb: int = DEFAULT_MEMORY_MB
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    drain_seconds: float = 25.0
    log_level: str = "INFO"
    termination_log: str = "/dev/termination-log"


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not a number", f"set {name} to a number >= {minimum:g}"
        ) from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} is below {minimum:g}", f"set {name} >= {minimum:g}")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    value = _number(env, name, default, minimum=minimum)
    if value != int(value):
        raise ConfigError(
            f"{name}={env[name]!r} is not a whole number", f"set {name} to an integer"
        )
    return int(value)


def pool_config_from_env(env: Mapping[str, str]) -> RuntimeConfig:
    """A pool replica's settings before it knows its Function: where it listens, nothing
    else (HANSHU_HANDLER and the rest come with the specialize request)."""
    return config_from_env({**env, "HANSHU_HANDLER": env.get("HANSHU_HANDLER") or "pool.pending"})


def config_from_env(env: Mapping[str, str]) -> RuntimeConfig:
    """Parse and check every setting; a bad one is a start-up fault naming the variable."""
    handler = env.get("HANSHU_HANDLER", "").strip()
    if not handler:
        raise ConfigError(
            "HANSHU_HANDLER is not set",
            "set HANSHU_HANDLER to 'module.function' (for example 'index.handler') "
            "or 'module:object' for a WSGI/ASGI app",
        )
    raw_type = env.get("HANSHU_HANDLER_TYPE", "event").strip().lower() or "event"
    try:
        handler_type = HandlerType(raw_type)
    except ValueError:
        raise ConfigError(
            f"HANSHU_HANDLER_TYPE={raw_type!r} is not a known handler type",
            "set HANSHU_HANDLER_TYPE to one of: event, wsgi, asgi",
        ) from None
    timeout = _number(env, "HANSHU_TIMEOUT", 30.0, minimum=0.001)
    return RuntimeConfig(
        handler=handler,
        handler_type=handler_type,
        code_dir=env.get("HANSHU_CODE_DIR", "/code") or "/code",
        initializer=env.get("HANSHU_INITIALIZER", "").strip() or None,
        timeout_seconds=timeout,
        initializer_timeout_seconds=_number(
            env, "HANSHU_INITIALIZER_TIMEOUT", timeout, minimum=0.001
        ),
        concurrency=_integer(env, "HANSHU_CONCURRENCY", DEFAULT_CONCURRENCY, minimum=1),
        host=env.get("HANSHU_HOST", "0.0.0.0") or "0.0.0.0",
        port=_integer(env, "HANSHU_PORT", 8080, minimum=0),
        admin_port=_integer(env, "HANSHU_ADMIN_PORT", 9090, minimum=0),
        function_name=env.get("HANSHU_FUNCTION_NAME", "function") or "function",
        function_version=env.get("HANSHU_FUNCTION_VERSION", "$LATEST") or "$LATEST",
        namespace=env.get("HANSHU_NAMESPACE", "").strip() or "default",
        instance=env.get("HOSTNAME", "").strip() or socket.gethostname(),
        memory_mb=_integer(env, "HANSHU_MEMORY_MB", DEFAULT_MEMORY_MB, minimum=1),
        max_body_bytes=_integer(env, "HANSHU_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, minimum=0),
        drain_seconds=_number(env, "HANSHU_DRAIN_SECONDS", 25.0, minimum=0),
        log_level=(env.get("HANSHU_LOG_LEVEL", "INFO") or "INFO").upper(),
        termination_log=env.get("HANSHU_TERMINATION_LOG", "/dev/termination-log"),
    )
