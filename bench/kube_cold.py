"""Cold start through the Kubernetes seam, next to the floor (gateway_bench.py, section 4).

kmock serves the API in this process and the cluster gateway (``KubeGateway``) watches it.
A stand-in autoscaler takes the gateway's cold report and does what the Deployment and the
endpoints controller would: start a runtime process and write an EndpointSlice whose
endpoint is not ready. Nothing marks it ready (no kubelet here): the gateway's own probe
is what finds the replica. Rounds alternate with the floor, a runtime process started the
same way and asked directly until it first answers.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import kmock
from aiohttp import web
from common import free_port
from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL
from hanshu_api.kube import KubeClient, config_from_kubeconfig, path_for
from hanshu_api.platform import Endpoint
from hanshu_gateway.kube_gateway import KubeGateway
from hanshu_gateway.upstream import UpstreamPool

from devtools.kube_emulator import ApplyingEmulator, declare_resources, write_kubeconfig

NS = "bench"
HELLO = "def handler(event, context):\n    return 'Hello, world!'\n"
SLICES = path_for("discovery.k8s.io/v1", "endpointslices", NS)


def runtime_env(code: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "HANSHU_HANDLER": "index.handler",
        "HANSHU_CODE_DIR": str(code),
        "HANSHU_HOST": "127.0.0.1",
        "HANSHU_PORT": str(port),
        "HANSHU_ADMIN_PORT": str(free_port()),
        "HANSHU_TERMINATION_LOG": os.devnull,
    }


async def start_runtime(code: Path, port: int, *, logs: bool = False) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hanshu_runtime",
        env=runtime_env(code, port),
        stdout=asyncio.subprocess.PIPE if logs else asyncio.subprocess.DEVNULL,
    )


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
    await process.wait()


async def floor_ms(code: Path, upstream: UpstreamPool) -> float:
    """A runtime process's start to its first answer. Not found by polling (on two busy
    cores a tight poll slows the very start it times): the runtime logs "ready" once it
    listens, and the first request goes then."""
    endpoint = Endpoint("127.0.0.1", free_port())
    started = time.perf_counter()
    process = await start_runtime(code, endpoint.port, logs=True)
    assert process.stdout is not None
    try:
        while b'"message": "ready"' not in await process.stdout.readline():
            if process.stdout.at_eof():
                raise RuntimeError("the runtime exited before it was ready")
        reply = await upstream.request(endpoint, "GET", "/", (), b"", 5)
        assert reply.status == 200, reply.status
        return (time.perf_counter() - started) * 1000
    finally:
        await stop(process)


def starting_slice(name: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {"hanshu.io/function": "cold", "kubernetes.io/service-name": "cold"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["127.0.0.1"], "conditions": {"ready": False, "serving": False}}
        ],
    }


class StandInScaler:
    """The autoscaler, the Deployment and the endpoints controller, as far as a cold start
    needs them: a cold report starts one replica and publishes it, not ready."""

    def __init__(self, kube: KubeClient, code: Path) -> None:
        self.kube = kube
        self.code = code
        self.replica: tuple[asyncio.subprocess.Process, str] | None = None
        self.rounds = 0

    async def stats(self, request: web.Request) -> web.Response:
        report = await request.json()
        if report.get("cold") and self.replica is None:
            self.rounds += 1
            port = free_port()
            name = f"cold-{self.rounds}"
            process = await start_runtime(self.code, port)
            self.replica = (process, name)
            await self.kube.create(SLICES, starting_slice(name, port))
        return web.Response(status=204)

    async def scale_to_zero(self) -> None:
        if self.replica is not None:
            process, name = self.replica
            await self.kube.delete(f"{SLICES}/{name}")
            await stop(process)
            self.replica = None


async def kube_cold(rounds: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hanshu-kube-cold-"))
    (folder / "index.py").write_text(HELLO)
    async with ApplyingEmulator() as emulator, kmock.Server(emulator):
        declare_resources(emulator)
        kubeconfig = write_kubeconfig(folder / "kubeconfig", str(emulator.url), NS)
        kube = KubeClient(config_from_kubeconfig(str(kubeconfig)))
        scaler = StandInScaler(kube, folder)
        app = web.Application()
        app.router.add_post("/stats", scaler.stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sink = free_port()
        await web.TCPSite(runner, "127.0.0.1", sink).start()
        await kube.create(
            path_for(API_VERSION, FUNCTION_PLURAL, NS),
            {
                "apiVersion": API_VERSION,
                "kind": "Function",
                "metadata": {"name": "cold", "namespace": NS},
                "spec": {"handler": "index.handler", "code": {"image": "x"}},
            },
        )
        await kube.create(
            path_for(API_VERSION, TRIGGER_PLURAL, NS),
            {
                "apiVersion": API_VERSION,
                "kind": "Trigger",
                "metadata": {"name": "cold", "namespace": NS},
                "spec": {"functionRef": {"name": "cold"}, "http": {"path": "/cold"}},
            },
        )
        port = free_port()
        gateway = KubeGateway.from_env(
            {
                "KUBECONFIG": str(kubeconfig),
                "HANSHU_WATCH_NAMESPACES": NS,
                "HANSHU_GATEWAY_HOST": "127.0.0.1",
                "HANSHU_GATEWAY_PORT": str(port),
                "HANSHU_GATEWAY_INTERNAL_PORT": str(free_port()),
                "HANSHU_AUTOSCALER_URL": f"http://127.0.0.1:{sink}",
            }
        )
        await gateway.start()
        upstream = UpstreamPool()
        floors: list[float] = []
        colds: list[float] = []
        try:
            while not gateway.synced() or ("bench", "cold") not in gateway.catalog.functions:
                await asyncio.sleep(0.01)
            pool = gateway.catalog.functions[(NS, "cold")].pool
            async with aiohttp.ClientSession() as http:
                for _ in range(rounds):
                    floors.append(await floor_ms(folder, upstream))
                    started = time.perf_counter()
                    async with http.get(f"http://127.0.0.1:{port}/cold") as reply:
                        await reply.read()
                        assert reply.status == 200, reply.status
                    colds.append((time.perf_counter() - started) * 1000)
                    await scaler.scale_to_zero()
                    while not pool.is_cold:  # the slice's deletion reaches the gateway
                        await asyncio.sleep(0.01)
        finally:
            upstream.close()
            await scaler.scale_to_zero()
            await gateway.stop()
            await kube.close()
            await runner.cleanup()
    floor, cold = statistics.median(floors), statistics.median(colds)
    print(
        f"\n4. Cold start through the Kubernetes seam (kmock, KubeGateway, a runtime process, "
        f"an endpoint never marked ready), {rounds} rounds, medians"
    )
    print(f"   floor: runtime process start -> first answer  {floor:7.1f} ms")
    print(f"   cold request: arrival -> reply               {cold:7.1f} ms")
    # Paired: each cold start less the floor measured just before it. On a shared machine
    # the floor itself moves by tens of ms between minutes; the pairs move together.
    above = [c - f for f, c in zip(floors, colds, strict=True)]
    quartiles = statistics.quantiles(above, n=4)
    print(
        f"   above the floor, median of the rounds        {statistics.median(above):+7.1f} ms "
        f"(target <= 30 ms)   middle half of the rounds "
        f"{quartiles[0]:+.1f} to {quartiles[2]:+.1f} ms"
    )
