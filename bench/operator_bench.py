"""How fast the operator turns many Functions into workloads, and what memory it needs.

kmock (the Kubernetes API emulator) serves on loopback in this process; the operator runs
as its own process (``python -m hanshu_operator``), as in a cluster. The benchmark creates N
Functions at once and prints the time until every child (code ConfigMap, Deployment,
Service) exists, the time until every Function reports Ready, and the operator's peak RSS.

    python bench/operator_bench.py [--functions 500]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kmock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import free_port
from hanshu_api import API_VERSION, FUNCTION_PLURAL
from hanshu_api.kube import KubeClient, config_from_kubeconfig, path_for

from tests.kube_emulator import ApplyingEmulator, declare_resources, write_kubeconfig

NAMESPACE = "bench"
CHILDREN = (("v1/configmaps", "{}-code"), ("apps/v1/deployments", "{}"), ("v1/services", "{}"))


class ForgetfulEmulator(ApplyingEmulator):
    """kmock (taught server-side apply, which the operator's children need) without its
    request log. kmock records every request for test assertions and, to dispatch each new
    one, scans the whole log: O(n) per request, O(n^2) per run, which would make the
    emulator, not the operator, what this benchmark measures."""

    async def _handle(self, request: Any) -> Any:
        try:
            return await super()._handle(request)
        finally:
            with contextlib.suppress(ValueError):
                self._requests.remove(request)


def function(index: int) -> dict[str, object]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "metadata": {
            "name": f"fn-{index:04d}",
            "namespace": NAMESPACE,
            "uid": f"uid-{index}",
            "generation": 1,
        },
        "spec": {
            "handler": "index.handler",
            "code": {"inline": {"index.py": f"def handler(e, c):\n    return {index}\n"}},
        },
    }


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def exists(emulator: kmock.KubernetesEmulator, resource: str, name: str) -> bool:
    try:
        return not emulator.objects[resource, NAMESPACE, name].deleted
    except KeyError:
        return False


def is_ready(emulator: kmock.KubernetesEmulator, name: str) -> bool:
    status = emulator.objects[f"{API_VERSION}/{FUNCTION_PLURAL}", NAMESPACE, name].get("status")
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (status or {}).get("conditions") or []
    )


def has_children(emulator: kmock.KubernetesEmulator, name: str) -> bool:
    return all(exists(emulator, resource, pattern.format(name)) for resource, pattern in CHILDREN)


async def run(count: int) -> None:
    async with ForgetfulEmulator() as emulator, kmock.Server(emulator):
        declare_resources(emulator)
        workdir = Path(tempfile.mkdtemp(prefix="hanshu-bench-"))
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", str(emulator.url), NAMESPACE)
        liveness = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "HANSHU_WATCH_NAMESPACES": NAMESPACE,
            "HANSHU_OPERATOR_METRICS_PORT": "0",
            "HANSHU_OPERATOR_LIVENESS_PORT": str(liveness),
        }
        operator = subprocess.Popen(
            [sys.executable, "-m", "hanshu_operator"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        kube = KubeClient(config_from_kubeconfig(str(kubeconfig)))
        try:
            await wait_live(liveness)
            names = [f"fn-{i:04d}" for i in range(count)]
            limit = asyncio.Semaphore(50)

            async def create(index: int) -> None:
                async with limit:
                    await kube.create(
                        path_for(API_VERSION, FUNCTION_PLURAL, NAMESPACE), function(index)
                    )

            started = time.perf_counter()
            await asyncio.gather(*(create(i) for i in range(count)))
            created = time.perf_counter() - started
            # Check only what is still pending, and not too often: the checks share this
            # process's one core with kmock, which is what the operator is waiting for.
            without_children, not_ready = set(names), set(names)
            children_at = ready_at = 0.0
            while not_ready:
                await asyncio.sleep(0.2)
                now = time.perf_counter() - started
                without_children -= {n for n in without_children if has_children(emulator, n)}
                not_ready -= {n for n in not_ready - without_children if is_ready(emulator, n)}
                if not without_children and not children_at:
                    children_at = now
                if now > 900:
                    raise TimeoutError(
                        f"after 900s: {len(without_children)} without children, "
                        f"{len(not_ready)} not ready"
                    )
            ready_at = time.perf_counter() - started
            rss = peak_rss_mib(operator.pid)
        finally:
            await kube.close()
            operator.send_signal(signal.SIGTERM)
            operator.wait(timeout=30)
    print(
        f"\n{count} Functions against kmock, operator as its own process ({os.cpu_count()} cores)"
    )
    print(f"  all {count} created through the API in      {created:8.2f} s")
    print(
        f"  every child (ConfigMap, Deployment, Service) {children_at:8.2f} s  "
        f"({count / children_at:.0f} Functions/s)"
    )
    print(f"  every Function Ready                         {ready_at:8.2f} s")
    print(f"  operator peak RSS                            {rss:8.1f} MiB")


async def wait_live(port: int) -> None:
    import aiohttp

    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as reply:
                    if reply.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("the operator did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--functions", type=int, default=500)
    asyncio.run(run(parser.parse_args().functions))


if __name__ == "__main__":
    main()
