"""``python -m hanshu_runtime``: serve the handler named by ``HANSHU_HANDLER``."""

from __future__ import annotations

import asyncio
import gc
import os
import sys

# Start-up allocates many objects and frees almost none: collecting meanwhile only costs
# time before the first answer. The server freezes what is loaded and collects again
# once it is ready.
gc.disable()

from .config import config_from_env, pool_config_from_env  # noqa: E402
from .faults import ConfigError, StartupFault  # noqa: E402
from .instance import Instance  # noqa: E402
from .logs import configure_logging  # noqa: E402
from .specialize import POOL_MODE_ENV, POOL_TOKEN_ENV  # noqa: E402

DEFAULT_TERMINATION_LOG = "/dev/termination-log"


def report_startup_fault(fault: StartupFault, termination_log: str) -> None:
    """One line on stderr, and the same line where Kubernetes reads a container's last words."""
    line = fault.one_line()
    print(line, file=sys.stderr, flush=True)
    try:
        with open(termination_log, "w", encoding="utf-8") as sink:
            sink.write(line + "\n")
    except OSError:
        pass  # not in a pod, or the path is not writable: stderr already has it


async def _serve() -> None:
    if os.environ.get(POOL_MODE_ENV, "").strip() == "1":
        # A warm pool replica: the token is taken out of the environment at once (user
        # code loaded later must not find it there).
        token = os.environ.pop(POOL_TOKEN_ENV, "").strip()
        if not token:
            raise ConfigError(
                f"{POOL_MODE_ENV}=1 but {POOL_TOKEN_ENV} is not set",
                f"set {POOL_TOKEN_ENV} to the namespace's pool token (the platform does)",
            )
        config = pool_config_from_env(os.environ)
        configure_logging("pool", config.log_level)
        await Instance(config, pool_token=token).run()
        return
    config = config_from_env(os.environ)
    configure_logging(config.function_name, config.log_level)
    await Instance(config).run()


def main() -> None:
    try:
        asyncio.run(_serve())
    except StartupFault as fault:
        report_startup_fault(
            fault, os.environ.get("HANSHU_TERMINATION_LOG", DEFAULT_TERMINATION_LOG)
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
