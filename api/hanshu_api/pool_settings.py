"""The warm pool's chart settings, read alike by the operator (which keeps the pools) and
the gateway (which claims their pods and must judge eligibility by the same pod shape).

Off unless ``HANSHU_WARM_POOLS`` names a namespace: the pool costs N idle pods per
namespace (docs/operations.md, "The warm pool").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import INTERNAL_TOKEN_ENV
from .settings import ConfigError, FunctionDefaults, json_object, text
from .warm_pool import PoolShape

WARM_POOLS_ENV = "HANSHU_WARM_POOLS"
WARM_POOL_RESOURCES_ENV = "HANSHU_WARM_POOL_RESOURCES"
WARM_POOL_IMAGE_ENV = "HANSHU_WARM_POOL_IMAGE"
# A pool bigger than this is a typo: each pod is an idle runtime someone pays for.
MAX_POOL_SIZE = 100
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_POOLS_ACCEPTED = (
    'a JSON object of namespace names to pool sizes, like {"team-a": 2} '
    f"(sizes 1 to {MAX_POOL_SIZE}; the chart's warmPool.namespaces)"
)


@dataclass(frozen=True, slots=True)
class WarmPoolSettings:
    """Which namespaces keep a pool, how many pods each, and what every pool pod has."""

    sizes: Mapping[str, int] = field(default_factory=dict)
    image: str = ""
    # The pool pod's requests and limits: a Function asking for more is not eligible.
    resources: Mapping[str, Any] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.sizes)

    def shape(self, namespace: str) -> PoolShape | None:
        """The pool of ``namespace`` as ``pool_eligibility`` takes it; None without one."""
        size = self.sizes.get(namespace, 0)
        if size <= 0:
            return None
        return PoolShape(image=self.image, resources=self.resources, size=size)

    @classmethod
    def from_env(cls, env: Mapping[str, str], default_image: str) -> WarmPoolSettings:
        """Raises ConfigError naming the variable when one is malformed, or when pools are
        asked for without the internal token. The pool pod's resources default to the
        chart's functionDefaults.resources, so a Function that sets none of its own fits."""
        pools = json_object(env, WARM_POOLS_ENV, _POOLS_ACCEPTED) or {}
        for namespace, size in pools.items():
            if not _NAMESPACE.match(namespace):
                raise ConfigError(
                    WARM_POOLS_ENV, f"has {namespace!r}, not a namespace name", _POOLS_ACCEPTED
                )
            if not isinstance(size, int) or isinstance(size, bool):
                raise ConfigError(
                    WARM_POOLS_ENV, f"gives {namespace!r} {size!r}, not a number", _POOLS_ACCEPTED
                )
            if not 1 <= size <= MAX_POOL_SIZE:
                raise ConfigError(
                    WARM_POOLS_ENV, f"gives {namespace!r} {size} pods", _POOLS_ACCEPTED
                )
        if not pools:
            return cls()  # off: nothing else is read
        if not text(env, INTERNAL_TOKEN_ENV):
            # Each namespace's pool token is derived from the internal token: without one
            # it would be a value anybody can compute.
            raise ConfigError(
                WARM_POOLS_ENV,
                f"names pooled namespaces but {INTERNAL_TOKEN_ENV} is unset",
                f"{{}} (no pool) or set {INTERNAL_TOKEN_ENV} (the chart does)",
            )
        if env.get(WARM_POOL_RESOURCES_ENV, "").strip():
            # One checker of requests/limits quantities: FunctionDefaults', under our name.
            try:
                resources = FunctionDefaults.from_env(
                    {"HANSHU_DEFAULT_RESOURCES": env[WARM_POOL_RESOURCES_ENV]}
                ).resources
            except ConfigError as bad:
                renamed = ConfigError(WARM_POOL_RESOURCES_ENV, "", "")
                renamed.args = (str(bad).replace(bad.variable, WARM_POOL_RESOURCES_ENV),)
                raise renamed from None
        else:
            resources = FunctionDefaults.from_env(env).resources
        return cls(
            sizes=dict(pools),
            image=text(env, WARM_POOL_IMAGE_ENV, default_image),
            resources=resources,
        )
