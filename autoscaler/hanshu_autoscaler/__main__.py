"""``python -m hanshu_autoscaler``: check the settings, then run the autoscaler."""

from __future__ import annotations

import asyncio
import logging
import sys

from hanshu_api.kube_login import KubeLoginError, load_config
from hanshu_api.logs import configure_logging

from .config import ConfigError, config_from_env
from .server import serve


def main() -> None:
    # Before anything connects: a bad setting is one line, not a traceback.
    try:
        config = config_from_env()
        load_config()
    except (ConfigError, KubeLoginError) as error:
        sys.exit(f"hanshu-autoscaler: {error}")
    configure_logging("autoscaler", logging.getLevelNamesMapping()[config.log_level])
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
