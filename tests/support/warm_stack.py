"""The dev stack in this process with a local warm pool: a real gateway, autoscaler and
runtime processes (the Function's own replicas and the pool's), reachable on loopback, and
the pool itself open to the test (which processes wait, which serve what)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from hanshu_cli.devmode import DevStack
from hanshu_cli.local_platform import free_port
from hanshu_cli.local_pool import LocalWarmPool


class WarmStack:
    def __init__(self, stack: DevStack) -> None:
        self.stack = stack

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.stack.port}"

    @property
    def pool(self) -> LocalWarmPool:
        assert self.stack.local_pool is not None
        return self.stack.local_pool

    def own_replicas(self, name: str, namespace: str = "default") -> int | None:
        return self.stack.platform.current_replicas((namespace, name))

    # Asynchronous: the gateway runs on this event loop, and a blocking call would stall it.
    async def functions(self) -> dict[str, dict[str, Any]]:
        url = f"http://127.0.0.1:{self.stack.internal_port}/functions"
        async with aiohttp.ClientSession() as http, http.get(url) as reply:
            return {f["name"]: f for f in await reply.json()}

    async def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.stack.internal_port}/metrics"
        async with aiohttp.ClientSession() as http, http.get(url) as reply:
            return await reply.text()


@contextlib.asynccontextmanager
async def warm_stack(
    tmp_path: Path, documents: list[dict[str, Any]], warm_pool: int = 2, **settings: Any
) -> AsyncIterator[WarmStack]:
    manifest = tmp_path / "manifests.yaml"
    manifest.write_text(yaml.safe_dump_all(documents))
    stack = DevStack(
        [manifest],
        port=free_port(),
        internal_port=free_port(),
        nats_url="off",
        warm_pool=warm_pool,
        **settings,
    )
    await stack.start()
    try:
        yield WarmStack(stack)
    finally:
        await stack.stop()
