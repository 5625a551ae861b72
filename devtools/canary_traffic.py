"""A canary's traffic through the real gateway, for the canary's test and benchmark.

Each version of a Function is served by a real runtime process (``start_version``, as the
operator's pod spec starts one), the gateway is ``python -m hanshu_gateway``
(``start_gateway``) or the test's in-process one; requests go to the gateway's route on an
alias at a steady rate, one after another, and each is noted with the version the gateway
says served it (its ``X-Hanshu-Version`` reply header) and the status. The gateway routes,
counts and reports to the autoscaler on its own: nothing here routes or reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from hanshu_api.versions import VERSION_HEADER

# A version that answers 500 for one call in five (20 %), the others 200.
FLAKY_HANDLER = """
calls = 0


def handler(event, context):
    global calls
    calls += 1
    if calls % 5 == 0:
        return {"statusCode": 500, "body": "broken"}
    return {"statusCode": 200, "body": "v-flaky"}
"""
GOOD_HANDLER = """
def handler(event, context):
    return {"statusCode": 200, "body": "v-good"}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class VersionRuntime:
    """One version's replica: the runtime as its own process on loopback."""

    process: subprocess.Popen[bytes]
    port: int
    admin_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the runtime exited with {self.process.returncode}")
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                address = f"http://127.0.0.1:{self.admin_port}/readyz"
                with urllib.request.urlopen(address, timeout=1) as reply:
                    if reply.status == 200:
                        return
            time.sleep(0.02)
        raise TimeoutError(f"the runtime on :{self.port} was not ready within {timeout}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_version(workdir: Path, function: str, version: int, code: str) -> VersionRuntime:
    """A version's runtime, started as the operator's pod spec starts one."""
    code_dir = workdir / f"{function}-v{version}"
    code_dir.mkdir(parents=True, exist_ok=True)
    (code_dir / "index.py").write_text(code)
    port, admin_port = free_port(), free_port()
    env = {
        **os.environ,
        "HANSHU_HANDLER": "index.handler",
        "HANSHU_CODE_DIR": str(code_dir),
        "HANSHU_HOST": "127.0.0.1",
        "HANSHU_PORT": str(port),
        "HANSHU_ADMIN_PORT": str(admin_port),
        "HANSHU_TERMINATION_LOG": str(workdir / f"termination-{port}"),
        "HANSHU_FUNCTION_NAME": function,
        "HANSHU_FUNCTION_VERSION": str(version),
        "HANSHU_PUBLISHED_VERSION": str(version),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "hanshu_runtime"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return VersionRuntime(process, port, admin_port)


@dataclass
class GatewayProcess:
    """``python -m hanshu_gateway`` (the cluster gateway) as its own process on loopback,
    configured from the environment as its Deployment configures it."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_gateway(
    kubeconfig: Path, namespace: str, autoscaler_url: str, stats_interval: float
) -> GatewayProcess:
    port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "HANSHU_GATEWAY_HOST": "127.0.0.1",
        "HANSHU_GATEWAY_PORT": str(port),
        "HANSHU_GATEWAY_INTERNAL_PORT": str(free_port()),
        "HANSHU_WATCH_NAMESPACES": namespace,
        "HANSHU_AUTOSCALER_URL": autoscaler_url,
        "HANSHU_STATS_INTERVAL": str(stats_interval),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "hanshu_gateway"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return GatewayProcess(process, port)


@dataclass(frozen=True, slots=True)
class Served:
    at: float  # time.monotonic() when the request was sent
    version: int | None  # the gateway's X-Hanshu-Version reply header; None without one
    status: int


@dataclass
class GatewayTraffic:
    """Requests to one gateway URL at a steady rate, each noted as the gateway answered it.
    Each request carries the next of ``callers``' headers in turn (none by default)."""

    url: str
    callers: Sequence[Mapping[str, str]] = ({},)
    served: list[Served] = field(default_factory=list)

    async def call(
        self, http: aiohttp.ClientSession, headers: Mapping[str, str] | None = None
    ) -> Served:
        sent = time.monotonic()
        async with http.post(self.url, data=b"{}", headers=dict(headers or {})) as reply:
            await reply.read()
            header = reply.headers.get(VERSION_HEADER)
            served = Served(sent, int(header) if header else None, reply.status)
        self.served.append(served)
        return served

    async def run(self, rate: float, stop: asyncio.Event) -> None:
        """``rate`` requests a second, one after another, until ``stop``."""
        async with aiohttp.ClientSession() as http:
            next_at = time.monotonic()
            for headers in itertools.cycle(self.callers):
                if stop.is_set():
                    break
                await self.call(http, headers)
                next_at += 1 / rate
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def since(self, at: float) -> list[Served]:
        return [s for s in self.served if s.at >= at]

    def share(self, version: int, since: float) -> float:
        """The share of the requests sent since ``since`` that ``version`` served."""
        recent = self.since(since)
        return sum(s.version == version for s in recent) / len(recent) if recent else 0.0

    def all_on_from(self, version: int) -> float | None:
        """When the traffic settled on ``version``: the time of the first request after
        which every one was served by it; None: the last one was not."""
        if not self.served or self.served[-1].version != version:
            return None
        start = len(self.served)
        while start > 0 and self.served[start - 1].version == version:
            start -= 1
        return self.served[start].at


__all__ = [
    "FLAKY_HANDLER",
    "GOOD_HANDLER",
    "GatewayProcess",
    "GatewayTraffic",
    "Served",
    "VersionRuntime",
    "start_gateway",
    "start_version",
]
