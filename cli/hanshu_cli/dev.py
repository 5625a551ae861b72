"""``hanshu dev``: run the dev stack until SIGINT / SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence


async def _serve_until_signalled(stack: object) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stack.start()  # type: ignore[attr-defined]
    try:
        await stopping.wait()
    finally:
        await stack.stop()  # type: ignore[attr-defined]


def run_dev(
    paths: Sequence[str],
    *,
    port: int,
    internal_port: int,
    autoscaler_port: int,
    nats_url: str,
    dispatcher: bool,
    stable_window: float,
    cold_start_timeout: float,
    queue_limit: int,
    max_body_bytes: int,
    stats_interval: float,
    header_timeout: float,
) -> None:
    from hanshu_gateway.loop import run
    from hanshu_operator.autoscaler import Policy

    from .devmode import DevStack

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stack = DevStack(
        paths,
        port=port,
        internal_port=internal_port,
        policy=Policy(stable_window=stable_window, panic_window=max(1.0, stable_window / 10)),
        cold_start_timeout=cold_start_timeout,
        queue_limit=queue_limit,
        max_body_bytes=max_body_bytes,
        stats_interval=stats_interval,
        header_timeout=header_timeout,
        autoscaler_port=autoscaler_port,
        nats_url=nats_url,
        dispatcher=dispatcher,
    )
    run(_serve_until_signalled(stack))
