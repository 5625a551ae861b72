"""Stand-ins for a peer: a real aiohttp server on a loopback port, a URL that keeps what is
POSTed to it. ``free_port`` is dev mode's: the tests pick free ports, never fixed ones, so
they run side by side (pytest-xdist workers, other checkouts on the same machine)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from hanshu_cli.local_platform import free_port

__all__ = ["free_port", "recording_endpoint", "serving"]


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[int]:
    """A real aiohttp server for ``app`` on a loopback port (stand-ins for peers)."""
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def recording_endpoint(
    path: str = "/",
) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP endpoint keeping every JSON body POSTed to ``path`` (a URL destination,
    the autoscaler's /stats): yields its URL and the bodies received so far."""
    received: list[dict[str, Any]] = []

    async def keep(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post(path, keep)
    async with serving(app) as port:
        yield f"http://127.0.0.1:{port}{path}", received
