"""``python -m hanshu_dispatcher``: run async invocations stored in NATS JetStream."""

from __future__ import annotations

import asyncio
import signal
import sys

from hanshu_api.logs import configure_logging

from .config import ConfigError, config_from_env
from .schedules import TickSource, cron_ticks
from .service import Dispatcher


async def _serve(dispatcher: Dispatcher) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await dispatcher.start()
    await stopping.wait()
    await dispatcher.stop()


def main(ticks: TickSource = cron_ticks) -> None:
    """Run until SIGTERM; ``ticks`` says when schedules fire (their cron, but for tests)."""
    configure_logging("dispatcher")
    try:
        config = config_from_env()
    except ConfigError as bad:
        print(f"hanshu-dispatcher: {bad}", file=sys.stderr, flush=True)
        sys.exit(1)
    asyncio.run(_serve(Dispatcher(config, ticks)))


if __name__ == "__main__":
    main()
