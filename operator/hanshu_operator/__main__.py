"""``python -m hanshu_operator``: check the settings, then run the operator.

``kopf run -m hanshu_operator.handlers`` runs the same handlers (importing this package
alone registers none: the package stays importable without side effects).
"""

from __future__ import annotations

import sys

import kopf
from hanshu_api.kube_login import KubeLoginError, load_config

from . import handlers  # noqa: F401  (registers the handlers)
from .config import ConfigError, OperatorConfig, config_from_env


def main() -> None:
    # Before kopf starts or anything connects: a bad setting is one line, not a traceback.
    try:
        config = config_from_env()
        # Credentials too: a kubeconfig that cannot log in (a missing package, a broken
        # exec plugin) is one line here, not an error inside kopf's start-up logging.
        load_config()
    except (ConfigError, KubeLoginError) as error:
        sys.exit(f"hanshu-operator: {error}")
    run(config)


def run(config: OperatorConfig) -> None:
    kopf.configure(
        debug=config.log_level == "DEBUG",
        quiet=config.log_level in ("WARNING", "ERROR"),
        # JSON lines, as every component's (docs/operations.md, "Logs").
        log_format=kopf.LogFormat.JSON,
    )
    kopf.run(
        # One active replica by deployment (strategy Recreate, replicas 1): no peering CRD.
        standalone=True,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{config.liveness_port}/healthz",
    )


if __name__ == "__main__":
    main()
