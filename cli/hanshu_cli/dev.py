"""``hanshu dev``: run the dev stack until SIGINT / SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hanshu_autoscaler import Policy

    from .devmode import DevStack


async def _serve_until_signalled(stack: DevStack) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stack.start()
    try:
        await stopping.wait()
    finally:
        await stack.stop()


def dev_policy(stable_window: float) -> Policy:
    """The autoscaler's windows from the one ``--stable-window`` flag: panic at a tenth."""
    from hanshu_autoscaler import Policy

    return Policy(stable_window=stable_window, panic_window=max(1.0, stable_window / 10))


def serve_dev(stack: DevStack) -> None:
    """Run ``stack`` on the gateway's event loop until a signal stops it."""
    from hanshu_gateway.loop import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(_serve_until_signalled(stack))
