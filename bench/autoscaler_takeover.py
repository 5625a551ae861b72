"""How long the platform goes without an autoscaler when its leader dies.

Per round: kmock (the Kubernetes API emulator) serves on loopback in this process, with a
Function and its Deployment at zero replicas; two ``python -m hanshu_autoscaler``
processes elect a leader by the Lease; the leader is SIGKILLed (no goodbye: the Lease
stays as it was) while a cold request's report goes to the standby every ``--interval``
seconds, as a gateway behind the autoscaler's Service would send it. The figure: from the
kill to the first deployments/scale write, made by the new leader. It is bound by the
lease duration (4 s: a standby waits that long after the last renewal it saw) plus up to
a renew interval (1 s, how often the standby looks) plus a report interval.

    python bench/autoscaler_takeover.py [--rounds 5] [--interval 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import kmock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hanshu_api import API_VERSION, FUNCTION_PLURAL, LABEL_FUNCTION, LABEL_MANAGED_BY, MANAGED_BY
from hanshu_api.kube import KubeClient, config_from_kubeconfig, path_for

from devtools.autoscaler_process import LEASE_NAME, AutoscalerProcess
from devtools.kube_emulator import ApplyingEmulator, declare_resources, write_kubeconfig

NAMESPACE = "bench"
LEASES = "coordination.k8s.io/v1/leases"


def holder(emulator: kmock.KubernetesEmulator) -> str:
    try:
        found = emulator.objects[LEASES, NAMESPACE, LEASE_NAME]
    except KeyError:
        return ""
    return "" if found.deleted else str(found.raw["spec"].get("holderIdentity") or "")


def replicas(emulator: kmock.KubernetesEmulator) -> int:
    return int(emulator.objects["apps/v1/deployments", NAMESPACE, "hello"].raw["spec"]["replicas"])


def cold_report() -> dict[str, object]:
    return {
        "gateway": "bench-gateway",
        "functions": [{"namespace": NAMESPACE, "name": "hello", "inFlight": 0, "queued": 1}],
        "cold": [{"namespace": NAMESPACE, "name": "hello", "since": time.time()}],
    }


async def until(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("the condition was not met")
        await asyncio.sleep(0.01)


async def report_until_taken(standby: AutoscalerProcess, interval: float) -> None:
    """A gateway's cold report, sent again every interval until an autoscaler takes it."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while True:
            try:
                async with http.post(f"{standby.url}/stats", json=cold_report()) as reply:
                    if reply.status == 204:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(interval)


async def one_round(interval: float) -> float:
    emulator = ApplyingEmulator()
    async with emulator, kmock.Server(emulator):
        declare_resources(emulator)
        workdir = Path(tempfile.mkdtemp(prefix="hanshu-takeover-"))
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", str(emulator.url), NAMESPACE)
        kube = KubeClient(config_from_kubeconfig(str(kubeconfig)))
        await kube.create(
            path_for(API_VERSION, FUNCTION_PLURAL, NAMESPACE),
            {
                "apiVersion": API_VERSION,
                "kind": "Function",
                "metadata": {"name": "hello", "namespace": NAMESPACE, "uid": "uid-hello"},
                "spec": {"handler": "index.handler", "code": {"image": "x"}},
            },
        )
        await kube.create(
            path_for("apps/v1", "deployments", NAMESPACE),
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "hello",
                    "namespace": NAMESPACE,
                    "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_FUNCTION: "hello"},
                },
                "spec": {"replicas": 0},
            },
        )
        pair = [
            AutoscalerProcess(pod, kubeconfig, NAMESPACE, quiet=True).start()
            for pod in ("as-0", "as-1")
        ]
        try:
            await until(lambda: holder(emulator))
            leader = next(r for r in pair if r.identity == holder(emulator))
            standby = next(r for r in pair if r is not leader)
            # Both up and the standby settled (it has seen the leader renew) before the kill.
            await asyncio.sleep(2)
            await asyncio.to_thread(leader.kill)
            killed = time.monotonic()
            reporting = asyncio.create_task(report_until_taken(standby, interval))
            await until(lambda: replicas(emulator) == 1)
            took = time.monotonic() - killed
            await reporting
            assert holder(emulator) == standby.identity, "the write was not the new leader's"
            return took
        finally:
            for replica in pair:
                await asyncio.to_thread(replica.stop)
            await kube.close()


async def main(rounds: int, interval: float) -> None:
    took = []
    for index in range(rounds):
        took.append(await one_round(interval))
        print(f"  round {index + 1}: {took[-1]:.2f} s", flush=True)
    print(
        f"\nAutoscaler takeover: leader SIGKILLed -> first scale write by the new leader, "
        f"{rounds} rounds (lease 4 s, renew 1 s, a cold report every {interval:g} s)\n"
        f"  median {statistics.median(took):.2f} s   min {min(took):.2f} s   "
        f"max {max(took):.2f} s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.1)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.interval))
