"""Fixtures every test may use: runtime processes on loopback ports, an HTTP client session.
What tests import lives in tests/support/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.alone import take_turn
from tests.support.runtime_process import RuntimeProcess, start_runtime, wait_ready

# pytest-xdist's workers start with COLUMNS=80 (execnet's); the hanshu command's consoles fix
# their width from COLUMNS when first imported, and a CLI test sets it per invocation
# (tests/support/cli_cluster.py), which a width fixed at import would ignore.
for _terminal_size in ("COLUMNS", "LINES"):
    os.environ.pop(_terminal_size, None)


@pytest.fixture(autouse=True)
def _alone_when_marked(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Under pytest-xdist, a test marked ``alone`` runs while no other test does
    (tests/support/alone.py). Autouse, so it wraps the test's other fixtures too."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    # Each worker's base temporary directory is popen-gwN/ inside the run's own.
    shared = tmp_path_factory.getbasetemp().parent
    with take_turn(shared, alone=request.node.get_closest_marker("alone") is not None):
        yield


@pytest.fixture(autouse=True)
def _own_dev_state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's hanshu dev (and hanshu invoke) use a state file of the test's own, not
    the user's (cli/hanshu_cli/dev_state.py): parallel dev modes never meet there."""
    monkeypatch.setenv("HANSHU_DEV_STATE", str(tmp_path / "hanshu-dev-state.json"))


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
