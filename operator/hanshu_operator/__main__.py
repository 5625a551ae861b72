"""``python -m hanshu_operator``: run the operator (``kopf run -m hanshu_operator`` works too)."""

from __future__ import annotations

import os

import kopf

from . import handlers  # noqa: F401  (registers the handlers)
from .config import config_from_env


def main() -> None:
    config = config_from_env()
    level = os.environ.get("HANSHU_LOG_LEVEL", "INFO").upper()
    kopf.configure(debug=level == "DEBUG", quiet=level in ("WARNING", "ERROR"))
    kopf.run(
        # One active replica by deployment (strategy Recreate, replicas 1): no peering CRD.
        standalone=True,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{config.liveness_port}/healthz",
    )


if __name__ == "__main__":
    main()
