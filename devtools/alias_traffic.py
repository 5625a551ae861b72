"""Traffic through an alias, as the gateway sends it, for the canary's test and benchmark.

Each request reads the Function's effective routing (``effective_routing`` of its
``spec.aliases`` and ``status.aliases``, as the gateway's watch sees them), picks a version
(``pick_version``), is served by that version's runtime (a real ``python -m hanshu_runtime``
process), and is counted in the gateway's own per-key figures (``FunctionStats``) that the
gateway's own ``StatsReporter`` posts to the autoscaler, keyed by the version's
``version_key``. That is the gateway's half of issue 28 seen from the autoscaler: the same
reads, the same figures and the same reports, so the canary controller is tested end to end
through its real inputs and outputs before the gateway routes by alias itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from hanshu_api.platform import FunctionKey
from hanshu_api.versions import (
    AliasRouting,
    effective_routing,
    parse_aliases,
    pick_version,
    version_key,
)
from hanshu_gateway.stats import FunctionStats, StatsReporter

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
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "hanshu_runtime"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return VersionRuntime(process, port, admin_port)


@dataclass(frozen=True, slots=True)
class Served:
    at: float  # time.monotonic() when the request was routed
    version: int
    status: int
    weight: int  # the additional version's share in the routing it was routed by


@dataclass
class AliasTraffic:
    """Requests to ``function:alias`` at a steady rate, routed, served, counted, reported."""

    read_function: Callable[[], Mapping[str, Any]]
    namespace: str
    function: str
    alias: str
    replicas: Mapping[int, str]  # version -> its runtime's URL
    autoscaler_url: str
    report_interval: float = 1.0
    stats: dict[FunctionKey, FunctionStats] = field(default_factory=dict)
    served: list[Served] = field(default_factory=list)
    # Per report: (time.monotonic(), {key: (requests, errors) since the traffic began}).
    reports: list[tuple[float, dict[FunctionKey, tuple[int, int]]]] = field(default_factory=list)
    _totals: dict[FunctionKey, tuple[int, int]] = field(default_factory=dict)

    def routing(self) -> AliasRouting:
        raw = self.read_function()
        problems: list[str] = []
        aliases = parse_aliases((raw.get("spec") or {}).get("aliases"), problems)
        if problems:
            raise ValueError("; ".join(problems))
        status_aliases = (raw.get("status") or {}).get("aliases") or []
        return effective_routing(aliases, status_aliases)[self.alias]

    def key(self, version: int) -> FunctionKey:
        return (self.namespace, version_key(self.function, version))

    def _reported(self) -> list[tuple[FunctionKey, FunctionStats]]:
        """What the reporter sends now; the running totals are noted beside it (for the
        benchmark's "first bad window reported")."""
        self.reports.append((time.monotonic(), dict(self._totals)))
        return list(self.stats.items())

    async def call(self, http: aiohttp.ClientSession) -> Served:
        routed = time.monotonic()
        routing = self.routing()
        version = pick_version(routing, random.random())  # noqa: S311
        key = self.key(version)
        stats = self.stats.setdefault(key, FunctionStats())
        stats.arrivals += 1
        stats.in_flight += 1
        started = time.monotonic()
        try:
            async with http.post(self.replicas[version], data=b"{}") as reply:
                await reply.read()
                status = reply.status
        finally:
            stats.in_flight -= 1
            stats.last_completed = time.monotonic()
        failed = status >= 500
        stats.record_outcome(time.monotonic() - started, failed)
        requests, errors = self._totals.get(key, (0, 0))
        self._totals[key] = (requests + 1, errors + failed)
        served = Served(routed, version, status, routing.additional_weight)
        self.served.append(served)
        return served

    async def run(self, rate: float, stop: asyncio.Event) -> None:
        """``rate`` requests a second, one after another, until ``stop``; the reporter
        posts every ``report_interval`` meanwhile."""
        reporter = StatsReporter(self.autoscaler_url, self._reported, self.report_interval)
        reporting = asyncio.create_task(reporter.run())
        try:
            async with aiohttp.ClientSession() as http:
                next_at = time.monotonic()
                while not stop.is_set():
                    await self.call(http)
                    next_at += 1 / rate
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            reporting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporting
            await reporter.close()

    def share(self, version: int, since: float) -> float:
        """The share of the requests routed since ``since`` that went to ``version``."""
        recent = [s for s in self.served if s.at >= since]
        return sum(s.version == version for s in recent) / len(recent) if recent else 0.0

    def unsplit_from(self) -> float | None:
        """When the alias stopped splitting: the time of the first request after which
        every one was routed with no share for the additional version (so 100 % went to
        the alias's version); None: the last one was still split."""
        if not self.served or self.served[-1].weight != 0:
            return None
        start = len(self.served)
        while start > 0 and self.served[start - 1].weight == 0:
            start -= 1
        return self.served[start].at


__all__ = ["AliasTraffic", "Served", "VersionRuntime", "start_version"]
