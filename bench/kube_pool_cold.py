"""Cold start from zero through the warm pool, through the Kubernetes seam.

kmock (the versioning emulator: a claim's resourceVersion precondition holds) serves the
API in this process and the cluster gateway (``KubeGateway``, ``HANSHU_WARM_POOLS``)
watches it. Each round, a pool "pod" is already running, as it would be: a runtime process
in pool mode, whose pod object (Ready, its IP 127.0.0.1) is in kmock before the round
starts. The round times a request to a Function at zero from its arrival to its reply:
the gateway claims the pod (a PATCH), sends it the code (the specialize call) and forwards
the request. Nothing answers the gateway's cold report (no autoscaler): only the pool can
serve it. Rounds alternate with the floor, a runtime process started and asked directly
until it first answers (what the pod-start path cannot go below).

On a real cluster the pod is already running too: the claim is one more API write, and the
specialize call crosses the pod network; nothing waits for a pod to start.

    .venv/bin/python bench/kube_pool_cold.py --rounds 25
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import json
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import free_port
from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL
from hanshu_api.kube import KubeClient, config_from_kubeconfig, path_for
from hanshu_api.warm_pool import (
    LABEL_POOL,
    LABEL_POOL_STATE,
    POOL_MODE_ENV,
    POOL_STATE_AVAILABLE,
    POOL_TOKEN_ENV,
    pool_token,
)
from hanshu_gateway import kube_pool
from hanshu_gateway.kube_gateway import KubeGateway
from hanshu_gateway.pipeline import Gateway
from hanshu_gateway.upstream import UpstreamPool
from kube_cold import floor_ms

from devtools.kube_emulator import ForgetfulEmulator, declare_resources, write_kubeconfig

NS = "bench"
TOKEN = "bench-internal-token"
HELLO = "def handler(event, context):\n    return 'Hello, world!'\n"


def pool_pod(name: str, port: int, admin_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {LABEL_POOL: "hanshu-pool", LABEL_POOL_STATE: POOL_STATE_AVAILABLE},
            # As the pool Deployment's ReplicaSet makes them: the gateway claims no other.
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{'hanshu-pool'}-7d9f8c6b5",
                    "uid": "pool-replicaset",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "function",
                    "image": "hanshu/runtime:dev",
                    "ports": [
                        {"name": "http", "containerPort": port},
                        {"name": "admin", "containerPort": admin_port},
                    ],
                }
            ]
        },
        "status": {"podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]},
    }


async def start_pool_runtime(port: int, admin_port: int) -> asyncio.subprocess.Process:
    """A pool pod's runtime, ready (its admin port answers) when this returns."""
    env = {
        **os.environ,
        POOL_MODE_ENV: "1",
        POOL_TOKEN_ENV: pool_token(TOKEN, NS),
        "HANSHU_HOST": "127.0.0.1",
        "HANSHU_PORT": str(port),
        "HANSHU_ADMIN_PORT": str(admin_port),
        "HANSHU_TERMINATION_LOG": os.devnull,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hanshu_runtime", env=env, stdout=asyncio.subprocess.DEVNULL
    )
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 30
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{admin_port}/healthz") as reply:
                    if reply.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("a pool runtime did not start in 30 s")
            await asyncio.sleep(0.05)


async def kube_pool_cold(rounds: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hanshu-kube-pool-"))
    (folder / "index.py").write_text(HELLO)
    # The pod's /tmp: where the pool runtimes write the code they are sent.
    kube_pool.POOL_CODE_DIR = str(folder / "pod-tmp")
    sink = web.Application()
    sink.router.add_post("/stats", lambda _: web.Response(status=204))
    sink_runner = web.AppRunner(sink, access_log=None)
    await sink_runner.setup()
    sink_port = free_port()
    await web.TCPSite(sink_runner, "127.0.0.1", sink_port).start()
    async with ForgetfulEmulator() as emulator, kmock.Server(emulator):
        declare_resources(emulator)
        kubeconfig = write_kubeconfig(folder / "kubeconfig", str(emulator.url), NS)
        kube = KubeClient(config_from_kubeconfig(str(kubeconfig)))
        for index in range(rounds):
            name = f"cold-{index}"
            await kube.create(
                path_for(API_VERSION, FUNCTION_PLURAL, NS),
                {
                    "apiVersion": API_VERSION,
                    "kind": "Function",
                    "metadata": {"name": name, "namespace": NS},
                    "spec": {"handler": "index.handler", "code": {"inline": {"index.py": HELLO}}},
                },
            )
            await kube.create(
                path_for(API_VERSION, TRIGGER_PLURAL, NS),
                {
                    "apiVersion": API_VERSION,
                    "kind": "Trigger",
                    "metadata": {"name": name, "namespace": NS},
                    "spec": {"functionRef": {"name": name}, "http": {"path": f"/{name}"}},
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
                "HANSHU_AUTOSCALER_URL": f"http://127.0.0.1:{sink_port}",
                "HANSHU_INTERNAL_TOKEN": TOKEN,
                "HANSHU_WARM_POOLS": json.dumps({NS: 1}),
            }
        )
        pool = gateway.warm_pool
        assert pool is not None
        await gateway.start()
        upstream = UpstreamPool()
        floors: list[float] = []
        colds: list[float] = []
        try:
            while not gateway.synced() or pool.verdict((NS, f"cold-{rounds - 1}")) is None:
                await asyncio.sleep(0.01)
            async with aiohttp.ClientSession() as http:
                for index in range(rounds):
                    floors.append(await floor_ms(folder, upstream))
                    function_port, admin_port = free_port(), free_port()
                    runtime = await start_pool_runtime(function_port, admin_port)
                    pod = f"pool-{index}"
                    await kube.create(
                        path_for("v1", "pods", NS), pool_pod(pod, function_port, admin_port)
                    )
                    while pool.available(NS) < 1:
                        await asyncio.sleep(0.01)
                    started = time.perf_counter()
                    async with http.get(f"http://127.0.0.1:{port}/cold-{index}") as reply:
                        await reply.read()
                        assert reply.status == 200, reply.status
                        assert reply.headers.get("X-Hanshu-Cold-Start-Path") == "pool"
                    colds.append((time.perf_counter() - started) * 1000)
                    runtime.terminate()
                    await runtime.wait()
                    await kube.delete(path_for("v1", "pods", NS, pod))
        finally:
            upstream.close()
            await gateway.stop()
            await kube.close()
            await sink_runner.cleanup()
    quantiles = statistics.quantiles(colds, n=100)
    print(
        f"\nCold start from zero through the warm pool, Kubernetes seam (kmock, KubeGateway, "
        f"a pool-mode runtime process per round), {rounds} rounds"
    )
    print(
        f"   pool: arrival -> reply                        p50 {statistics.median(colds):7.1f} ms"
        f"   p99 {quantiles[98]:7.1f} ms   (target p50 <= 100 ms)"
    )
    print(
        f"   floor: runtime process start -> first answer  p50 {statistics.median(floors):7.1f} ms"
        "   (what a pod start cannot go below)"
    )


def data_plane_missing() -> str | None:
    """The runtime's pool mode and the gateway's warm cold path are issue 27's other half."""
    if importlib.util.find_spec("hanshu_runtime.specialize") is None:
        return "the runtime has no pool mode (hanshu_runtime.specialize)"
    if "warm_pool" not in inspect.signature(Gateway).parameters:
        return "the gateway's Gateway takes no warm_pool"
    return None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=25)
    arguments = parser.parse_args()
    missing = data_plane_missing()
    if missing:
        sys.exit(f"kube_pool_cold: {missing}: this bench needs issue 27's data-plane half")
    asyncio.run(kube_pool_cold(arguments.rounds))
