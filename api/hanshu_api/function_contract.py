"""The contract between the platform and hanshu_runtime, written once.

What a replica of a Function is told (its ``HANSHU_*`` environment), what a handler name
looks like, and the largest request body it gets by default. The operator (pods in a
cluster) and the CLI's local platform (processes on a laptop) both build a replica's
environment here, so a Function behaves the same in both.

The runtime imports nothing of ours (its image stays small and its boot fast): it keeps its
own copies of the handler form and the body limit, each with a comment naming the constant
here, and a unit test keeps them equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import ADMIN_PORT, FUNCTION_PORT

if TYPE_CHECKING:  # only for the type: models.py may import the patterns below
    from .models import FunctionSpec

# Every variable of the contract starts with this; the Function CRD (a CEL rule) and
# parse_function_spec refuse user env names that do, so a user cannot change what the
# platform tells the runtime (its port, handler, memory, ...).
RESERVED_ENV_PREFIX = "HANSHU_"
# The Function's generation: a spec change gives the pod template a new value, so the
# operator tells a pod that predates the user's last change by it.
FUNCTION_VERSION_ENV = "HANSHU_FUNCTION_VERSION"

# The largest request body a replica takes by default (HANSHU_MAX_BODY_BYTES): AWS Lambda's
# synchronous payload limit. The gateway refuses larger bodies before they reach a replica.
MAX_BODY_BYTES = 6 * 1024 * 1024

# A handler: 'module.function' (Function Compute / Lambda style, 'index.handler') or
# 'module:object' ('app:app' for a web app); modules and objects may be dotted.
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rf"{_IDENTIFIER}(\.{_IDENTIFIER})*"
HANDLER_PATTERN_SOURCE = rf"^{_DOTTED}([.:]{_DOTTED})$"
HANDLER_PATTERN = re.compile(HANDLER_PATTERN_SOURCE)


def function_env(
    name: str,
    spec: FunctionSpec,
    *,
    generation: int | None,
    default_resources: Mapping[str, Any],
    code_dir: str,
    port: int = FUNCTION_PORT,
    admin_port: int = ADMIN_PORT,
    namespace: str | None = None,
    host: str | None = None,
    termination_log: str | None = None,
    region: str | None = None,
) -> dict[str, str]:
    """The ``HANSHU_*`` variables a replica of Function ``name`` starts with.

    ``namespace`` is left out when None: in a cluster the pod's own namespace comes from the
    downward API (a Kubernetes env entry the operator adds). ``host`` and
    ``termination_log`` are the local platform's: a pod listens on every address and has
    Kubernetes' /dev/termination-log, the runtime's defaults. ``region`` is the platform's
    (the chart's functionDefaults.region), when it is given one.

    The runtime derives AWS Lambda's own variables (``AWS_LAMBDA_FUNCTION_NAME``,
    ``LAMBDA_TASK_ROOT``, ``AWS_REGION`` from ``HANSHU_REGION``, ...) from these at start,
    where the pod's name is known too, and never over a value the Function sets itself
    (hanshu_runtime.lambda_env).
    """
    env = {
        "HANSHU_HANDLER": spec.handler,
        "HANSHU_HANDLER_TYPE": spec.handler_type,
        "HANSHU_CODE_DIR": code_dir,
        "HANSHU_TIMEOUT": str(spec.timeout_seconds),
        "HANSHU_CONCURRENCY": str(spec.concurrency),
        "HANSHU_PORT": str(port),
        "HANSHU_ADMIN_PORT": str(admin_port),
        "HANSHU_FUNCTION_NAME": name,
        # The Function's generation; a manifest never applied (dev mode) is its first.
        FUNCTION_VERSION_ENV: str(generation or 1),
        # What the replica really gets, platform defaults included: context.memory_limit_in_mb
        # and GB-second metering report the same figure.
        "HANSHU_MEMORY_MB": str(spec.effective_memory_mb(default_resources)),
        # An in-flight request may run for the whole timeout; let it finish on scale-down.
        "HANSHU_DRAIN_SECONDS": str(spec.timeout_seconds),
    }
    optional = {
        "HANSHU_INITIALIZER": spec.initializer,
        "HANSHU_NAMESPACE": namespace,
        "HANSHU_HOST": host,
        "HANSHU_TERMINATION_LOG": termination_log,
        "HANSHU_REGION": region,
    }
    env.update({key: value for key, value in optional.items() if value})
    return env


def user_env(entries: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The Function's own env entries without reserved names: the contract always wins.

    The CRD and the spec parser refuse such names already; leaving them out here keeps the
    rule for a spec that skipped both, and keeps the cluster and the local platform alike
    (in a pod the later of two entries would win, and server-side apply refuses the pair).
    """
    return [e for e in entries if not str(e.get("name", "")).startswith(RESERVED_ENV_PREFIX)]
