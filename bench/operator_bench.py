"""How fast the operator turns many Functions into workloads, and what memory it needs.

kmock (the Kubernetes API emulator) serves on loopback in this process; the operator runs
as its own process (``python -m hanshu_operator``), as in a cluster. The benchmark creates N
Functions at once and prints the time until every child (code ConfigMap, Deployment,
Service) exists, the time until every Function reports Ready, and the operator's peak RSS.

Then the wake-up path through the Kubernetes seam: the cluster gateway (``KubeGateway``, a
process of its own) reports a cold request to the autoscaler (``python -m
hanshu_autoscaler``, its own process too), which writes the Deployment's scale subresource;
the time from the request leaving its caller to that write leaving the autoscaler, once per
Function (each is cold once). The write is stamped by a relay between the autoscaler (and
the operator) and kmock (``scale_stamp_relay.py``): kmock itself serves one
request at a time, and back to back the write would wait there behind the previous
wake's status writes and Events, which a real API server serves side by side.

    python bench/operator_bench.py [--functions 500] [--wakes 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import kmock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import free_port, gateway_env
from hanshu_api import API_VERSION, FUNCTION_PLURAL
from hanshu_api.kube import KubeClient, config_from_kubeconfig, path_for

from devtools.autoscaler_process import AutoscalerProcess
from devtools.kube_emulator import ForgetfulEmulator, declare_resources, write_kubeconfig
from devtools.operator_process import AS_IN_THE_IMAGE, peak_rss_mib

NAMESPACE = "bench"
CHILDREN = (("v1/configmaps", "{}-code"), ("apps/v1/deployments", "{}"), ("v1/services", "{}"))


class ScaleWrites:
    """The times the operator sent each scale write, read from the stamping relay's output
    (``bench/scale_stamp_relay.py``, a process of its own between the operator and kmock)."""

    def __init__(self) -> None:
        self._waiters: dict[str, asyncio.Future[float]] = {}

    def expect(self, name: str) -> asyncio.Future[float]:
        waiter = self._waiters[name] = asyncio.get_running_loop().create_future()
        return waiter

    async def follow(self, relay: asyncio.subprocess.Process) -> None:
        assert relay.stdout is not None
        while line := await relay.stdout.readline():
            kind, name, at = line.decode().split()
            waiter = self._waiters.get(name)
            if kind == "scale" and waiter is not None and not waiter.done():
                waiter.set_result(float(at))


async def start_relay(upstream_port: int) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    relay = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).resolve().parent / "scale_stamp_relay.py"),
        str(port),
        str(upstream_port),
        stdout=asyncio.subprocess.PIPE,
    )
    assert relay.stdout is not None
    if await relay.stdout.readline() != b"listening\n":
        raise RuntimeError("the stamping relay did not start")
    return relay, port


def send_cold_request(port: int, path: str) -> tuple[float, socket.socket]:
    """Send a GET from this thread, connected beforehand: the time it leaves is the
    request's arrival, whatever this process's loop (kmock's) is busy with meanwhile.
    Returns that time (``time.monotonic()``, the relay's clock) and the socket, left open
    (no replica ever answers it)."""
    connection = socket.create_connection(("127.0.0.1", port))
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    sent = time.monotonic()
    connection.sendall(request)
    return sent, connection


def function(index: int) -> dict[str, object]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "metadata": {
            "name": f"fn-{index:04d}",
            "namespace": NAMESPACE,
            "uid": f"uid-{index}",
            "generation": 1,
            "resourceVersion": "1",
        },
        "spec": {
            "handler": "index.handler",
            "code": {"inline": {"index.py": f"def handler(e, c):\n    return {index}\n"}},
        },
    }


def exists(emulator: kmock.KubernetesEmulator, resource: str, name: str) -> bool:
    try:
        return not emulator.objects[resource, NAMESPACE, name].deleted
    except KeyError:
        return False


def is_ready(emulator: kmock.KubernetesEmulator, name: str, plural: str = FUNCTION_PLURAL) -> bool:
    status = emulator.objects[f"{API_VERSION}/{plural}", NAMESPACE, name].get("status")
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (status or {}).get("conditions") or []
    )


def has_children(emulator: kmock.KubernetesEmulator, name: str) -> bool:
    return all(exists(emulator, resource, pattern.format(name)) for resource, pattern in CHILDREN)


def start_operator(
    kubeconfig: Path, liveness: int, log: Path | None = None, **env: str
) -> subprocess.Popen[bytes]:
    """``python -m hanshu_operator`` as its own process, watching the bench namespace;
    ``env`` adds or overrides HANSHU_* settings (the metrics port is off unless given).
    Its output goes to ``log``, if given."""
    output = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-c", AS_IN_THE_IMAGE],
        env={
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "HANSHU_WATCH_NAMESPACES": NAMESPACE,
            "HANSHU_OPERATOR_METRICS_PORT": "0",
            "HANSHU_OPERATOR_LIVENESS_PORT": str(liveness),
            **env,
        },
        stdout=output,
        stderr=subprocess.STDOUT,
    )


def stop_operator(operator: subprocess.Popen[bytes]) -> None:
    operator.send_signal(signal.SIGTERM)
    try:
        operator.wait(timeout=30)
    except subprocess.TimeoutExpired:  # its figures are taken: do not lose them
        operator.kill()
        operator.wait()


async def create_all(
    kube: KubeClient, count: int, objects: Callable[[int], list[tuple[str, dict[str, Any]]]]
) -> None:
    """Create ``objects(i)`` (plural, manifest) for i in range(count), 50 at a time: as a
    team's CI would apply them, not one by one."""
    limit = asyncio.Semaphore(50)

    async def create(index: int) -> None:
        async with limit:
            for plural, manifest in objects(index):
                await kube.create(path_for(API_VERSION, plural, NAMESPACE), manifest)

    await asyncio.gather(*(create(i) for i in range(count)))


async def run(count: int) -> None:
    async with ForgetfulEmulator() as emulator, kmock.Server(emulator):
        declare_resources(emulator)
        workdir = Path(tempfile.mkdtemp(prefix="hanshu-bench-"))
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", str(emulator.url), NAMESPACE)
        liveness = free_port()
        operator = start_operator(kubeconfig, liveness)
        kube = KubeClient(config_from_kubeconfig(str(kubeconfig)))
        try:
            await wait_live(liveness)
            names = [f"fn-{i:04d}" for i in range(count)]
            started = time.perf_counter()
            await create_all(kube, count, lambda i: [(FUNCTION_PLURAL, function(i))])
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
            stop_operator(operator)
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


async def gateway_functions(http: aiohttp.ClientSession, internal: int) -> list[object]:
    try:
        async with http.get(f"http://127.0.0.1:{internal}/functions") as reply:
            return list(await reply.json()) if reply.status == 200 else []
    except aiohttp.ClientError:
        return []  # not listening yet


async def wait_live(port: int) -> None:
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


def trigger(index: int) -> dict[str, object]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Trigger",
        # A uid as a real API server gives one: kopf keeps what it knows of each object by
        # uid, and without one every Trigger would share one record.
        "metadata": {
            "name": f"fn-{index:04d}",
            "namespace": NAMESPACE,
            "uid": f"trigger-uid-{index}",
            "generation": 1,
            "resourceVersion": "1",
        },
        "spec": {"functionRef": {"name": f"fn-{index:04d}"}, "http": {"path": f"/fn-{index}"}},
    }


async def wake_up(count: int) -> None:
    """Arrival of a cold request at the gateway -> the autoscaler's deployments/scale write."""
    emulator = ForgetfulEmulator()
    scale_writes = ScaleWrites()
    async with emulator, kmock.Server(emulator):
        declare_resources(emulator)
        workdir = Path(tempfile.mkdtemp(prefix="hanshu-bench-"))
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", str(emulator.url), NAMESPACE)
        relay, relay_port = await start_relay(emulator.url.port)
        following = asyncio.create_task(scale_writes.follow(relay))
        # The autoscaler (and the operator) reach kmock through the relay, which stamps
        # the scale writes.
        operator_kubeconfig = write_kubeconfig(
            workdir / "operator-kubeconfig", f"http://127.0.0.1:{relay_port}", NAMESPACE
        )
        liveness = free_port()
        operator = start_operator(operator_kubeconfig, liveness)
        # One replica, the leader by itself once it holds the Lease; the chart's windows.
        autoscaler = AutoscalerProcess(
            "autoscaler-0",
            operator_kubeconfig,
            NAMESPACE,
            env={"HANSHU_STABLE_WINDOW_SECONDS": "60", "HANSHU_PANIC_WINDOW_SECONDS": "6"},
            quiet=True,
        ).start()
        kube = KubeClient(config_from_kubeconfig(str(kubeconfig)))
        # The gateway as its own process too, as in a cluster: kmock's work in this process
        # (every watch event the operator's writes cause) must not delay it.
        port, internal = free_port(), free_port()
        gateway = subprocess.Popen(
            [sys.executable, "-m", "hanshu_gateway"],
            env=gateway_env(
                kubeconfig,
                NAMESPACE,
                port,
                internal,
                HANSHU_AUTOSCALER_URL=autoscaler.url,
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        latencies: list[float] = []
        try:
            await wait_live(liveness)
            for index in range(2 * count):
                await kube.create(
                    path_for(API_VERSION, FUNCTION_PLURAL, NAMESPACE), function(index)
                )
                await kube.create(path_for(API_VERSION, "triggers", NAMESPACE), trigger(index))
            names = [f"fn-{i:04d}" for i in range(2 * count)]
            while not all(has_children(emulator, n) and is_ready(emulator, n) for n in names):
                await asyncio.sleep(0.1)
            async with aiohttp.ClientSession() as http:
                while len(await gateway_functions(http, internal)) < 2 * count:
                    await asyncio.sleep(0.1)
                for index, name in enumerate(names):
                    # First one at a time: what a cold request waits for, not the previous
                    # one's aftermath (its status write, its Event, the Deployment's watch
                    # event). Then back to back, where that aftermath is in the way.
                    if index < count:
                        await asyncio.sleep(0.5)
                    written = scale_writes.expect(name)
                    arrived, connection = await asyncio.to_thread(
                        send_cold_request, port, f"/fn-{index}"
                    )
                    try:
                        latencies.append((await asyncio.wait_for(written, 30) - arrived) * 1000)
                    finally:
                        connection.close()  # no replica will come: nothing here runs pods
        finally:
            gateway.terminate()
            gateway.wait(timeout=30)
            await kube.close()
            stop_operator(operator)
            await asyncio.to_thread(autoscaler.stop)
            following.cancel()
            relay.terminate()
            await relay.wait()
    print(
        f"\nWake-up through the Kubernetes seam: gateway process -> autoscaler process -> kmock, "
        f"{count} cold requests each way"
    )
    for shape, part in (("0.5 s apart", latencies[:count]), ("back to back", latencies[count:])):
        part.sort()
        print(
            f"  arrival -> scale write sent, {shape:<12}: "
            f"p50 {statistics.median(part):6.2f} ms   "
            f"p90 {part[int(len(part) * 0.9) - 1]:6.2f} ms   max {part[-1]:6.2f} ms"
            "  (target p50 <= 10 ms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--functions", type=int, default=500)
    parser.add_argument("--wakes", type=int, default=20)
    args = parser.parse_args()
    if args.functions:
        asyncio.run(run(args.functions))
    if args.wakes:
        asyncio.run(wake_up(args.wakes))


if __name__ == "__main__":
    main()
