"""hanshu dev with real runtime processes: init a folder, run it, invoke it (sync and
async), read its bill; and init -> deploy -> invoke as one flow, the deploy against the
emulated API and the call through the dev gateway the Trigger's status points at."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli_cluster import Cluster, ready, run_cli
from tests.support.servers import free_port


class DevProcess:
    def __init__(self, process: subprocess.Popen[str], port: int, internal_port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.internal_url = f"http://127.0.0.1:{internal_port}"


@pytest.fixture
def dev_folder(tmp_path: Path) -> Iterator[tuple[Path, DevProcess]]:
    folder = tmp_path / "greeter"
    init = subprocess.run(
        [sys.executable, "-m", "hanshu_cli", "init", "greeter", "--dir", str(folder)],
        capture_output=True,
        text=True,
    )
    assert init.returncode == 0, init.stderr
    port, internal = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hanshu_cli",
            "dev",
            str(folder),
            "--port",
            str(port),
            "--internal-port",
            str(internal),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    dev = DevProcess(process, port, internal)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            pytest.fail(f"hanshu dev exited: {process.stdout.read()}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"{dev.internal_url}/readyz", timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("hanshu dev did not start")
        time.sleep(0.05)
    yield folder, dev
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


async def test_invoke_prints_status_request_id_cold_start_duration_then_body(
    dev_folder: tuple[Path, DevProcess],
) -> None:
    _, dev = dev_folder
    cold = await run_cli("invoke", "greeter", "--gateway", dev.url, "--path", "/greeter?name=Ada")
    assert cold.exit_code == 0, cold.stderr
    summary = cold.stderr.splitlines()[-1]
    assert summary.startswith("200 OK")
    assert "cold start" in summary
    assert summary.endswith(" ms")
    body = json.loads(cold.stdout)
    assert body["message"] == "Hello, Ada!"
    assert f"request id {body['requestId']}" in summary
    warm = await run_cli("invoke", "greeter", "--gateway", dev.url)
    assert "warm" in warm.stderr.splitlines()[-1]
    missing = await run_cli("invoke", "greeter", "--gateway", dev.url, "--path", "/nowhere")
    assert missing.exit_code == 1
    assert missing.stderr.splitlines()[-1].startswith("404")


async def test_async_invoke_waits_for_the_end_state(dev_folder: tuple[Path, DevProcess]) -> None:
    _, dev = dev_folder
    result = await run_cli(
        "invoke", "greeter", "--gateway", dev.url, "--async", "--wait", "--data", "{}"
    )
    assert result.exit_code == 0, result.stderr
    assert "accepted: invocation" in result.stderr
    assert "Succeeded" in result.stderr
    assert json.loads(result.stdout)["message"] == "Hello, world!"


async def test_usage_reads_the_dev_gateways_metrics(dev_folder: tuple[Path, DevProcess]) -> None:
    _, dev = dev_folder
    for _ in range(3):
        assert (await run_cli("invoke", "greeter", "--gateway", dev.url)).exit_code == 0
    result = await run_cli("usage", "--metrics-url", f"{dev.internal_url}/metrics")
    assert result.exit_code == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "default/greeter" in line)
    invocations, errors, cold_starts, gb_seconds = row.split()[1:]
    assert (invocations, errors, cold_starts) == ("3", "0", "1")
    assert float(gb_seconds) > 0


async def test_init_then_deploy_then_invoke(
    cluster: Cluster, dev_folder: tuple[Path, DevProcess]
) -> None:
    """The operator's part (status) is written by the test; the gateway is the dev one."""
    folder, dev = dev_folder
    deploying = asyncio.create_task(cluster.hanshu("deploy", str(folder), "--timeout", "30"))

    async def operator() -> None:
        while "greeter" not in cluster.names("hanshu.io/v1alpha1/triggers"):
            await asyncio.sleep(0.02)
        url = f"{dev.url}/greeter"
        await cluster.set_status("functions", "greeter", ready(url=url))
        await cluster.set_status("triggers", "greeter", {**ready(), "type": "http", "url": url})

    await asyncio.wait_for(operator(), 30)
    deployed = await deploying
    assert deployed.exit_code == 0, deployed.stderr
    called = await cluster.hanshu("invoke", "greeter", "--path", "?name=Kube")
    assert called.exit_code == 0, called.stderr
    assert json.loads(called.stdout)["message"] == "Hello, Kube!"
