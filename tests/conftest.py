"""Fixtures every test may use: runtime processes on loopback ports, an HTTP client session.
What tests import lives in tests/support/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.runtime_process import RuntimeProcess, start_runtime, wait_ready


@pytest.fixture
def runtime_factory(tmp_path: Path) -> Iterator[object]:
    started: list[RuntimeProcess] = []

    def factory(code_dir: Path, handler: str, *, ready: bool = True, **env: str) -> RuntimeProcess:
        runtime = start_runtime(code_dir, handler, tmp_path, **env)
        started.append(runtime)
        if ready:
            wait_ready(runtime)
        return runtime

    yield factory
    for runtime in started:
        runtime.stop(timeout=10)


@pytest.fixture
async def http() -> Iterator[aiohttp.ClientSession]:  # type: ignore[misc]
    async with aiohttp.ClientSession() as session:
        yield session
