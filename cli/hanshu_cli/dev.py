"""``hanshu dev``: run the dev stack until SIGINT / SIGTERM (or until it cannot go on)."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING

from .errors import CliError

if TYPE_CHECKING:
    from hanshu_autoscaler import Policy

    from .devmode import DevStack

log = logging.getLogger("hanshu.dev")


async def _serve_until_signalled(stack: DevStack) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def signalled() -> None:
        # Ctrl-C reaches the replicas too (one process group): none is restarted now.
        if stack.platform is not None:
            stack.platform.stop_restarting()
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, signalled)
    await stack.start()  # stops what it started if it fails
    try:
        ended = asyncio.ensure_future(stack.wait_stopped())
        await asyncio.wait(
            [asyncio.ensure_future(stopping.wait()), ended], return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        await stack.stop()
    if stack.failed is not None:
        raise CliError(f"hanshu dev stopped: {stack.failed}")
    log.info("stopped")


def dev_policy(stable_window: float) -> Policy:
    """The autoscaler's windows from the one ``--stable-window`` flag: panic at a tenth."""
    from hanshu_autoscaler import Policy

    return Policy(stable_window=stable_window, panic_window=max(1.0, stable_window / 10))


def serve_dev(stack: DevStack) -> None:
    """Run ``stack`` on the gateway's event loop until a signal stops it."""
    from hanshu_gateway.loop import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # dev mode says what a change did, one line each; not how many files watchfiles saw.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    run(_serve_until_signalled(stack))
