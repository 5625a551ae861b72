"""How long a bad canary keeps its share of traffic once the figures show it is bad.

Per round: kmock (the Kubernetes API emulator) serves on loopback in this process, with a
Function whose alias ``live`` runs a canary of version 2 at 20 % (one step, so it never
moves on, ``maxErrorRate`` 5 %, ``minRequests`` 10); one ``python -m hanshu_autoscaler``
process leads; versions 1 and 2 are real runtime processes, version 2 answering 500 to one
call in five. Traffic through the alias at ``--rate`` requests a second is routed by the
Function's effective routing, as the gateway routes it, and counted and reported by the
gateway's own stats reporter every ``--report-interval`` seconds (devtools/alias_traffic.py).

The figure, measured where the traffic is: from the threshold crossing (the first report
whose figures for version 2, since the canary began, hold at least ``minRequests``
requests and more than 5 % errors) to the first request after which every request is
routed with no share for version 2 (100 % on version 1). A report of a version under a
canary wakes the controller's look at once (``--look``, HANSHU_CANARY_INTERVAL_SECONDS, is
only the longest wait between looks), so the figure is the report's trip, one look, the
status write and the read that carries the new routing to the router.

    python bench/canary_bench.py [--rounds 5] [--rate 100] [--report-interval 1] [--look 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kmock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hanshu_api import API_VERSION, FUNCTION_PLURAL, LABEL_FUNCTION, LABEL_MANAGED_BY, MANAGED_BY
from hanshu_api.kube import KubeClient, config_from_kubeconfig, path_for

from devtools.alias_traffic import FLAKY_HANDLER, GOOD_HANDLER, AliasTraffic, start_version
from devtools.autoscaler_process import LEASE_NAME, AutoscalerProcess
from devtools.kube_emulator import ApplyingEmulator, declare_resources, write_kubeconfig

NAMESPACE = "bench"
NAME = "shop"
FN = f"{API_VERSION}/{FUNCTION_PLURAL}"
MIN_REQUESTS = 10
MAX_ERROR_RATE = 0.05


def function_body() -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "uid": "uid-shop"},
        "spec": {
            "handler": "index.handler",
            "code": {"image": "x"},
            "aliases": [
                {
                    "name": "live",
                    "version": 1,
                    "additionalVersion": 2,
                    "canary": {
                        "steps": [20],
                        "interval": "10m",
                        "minRequests": MIN_REQUESTS,
                        "maxErrorRate": MAX_ERROR_RATE * 100,
                    },
                }
            ],
        },
    }


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_FUNCTION: name},
        },
        "spec": {"replicas": 1},
    }


async def until(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition was not met")
        await asyncio.sleep(0.01)


def crossing(traffic: AliasTraffic) -> float:
    """When the first report went out whose figures for version 2 cross the threshold."""
    key = traffic.key(2)
    for at, totals in traffic.reports:
        requests, errors = totals.get(key, (0, 0))
        if requests >= MIN_REQUESTS and errors / requests > MAX_ERROR_RATE:
            return at
    raise RuntimeError("no report crossed the threshold")


async def one_round(rate: float, report_interval: float, look: float) -> float:
    emulator = ApplyingEmulator()
    async with emulator, kmock.Server(emulator):
        declare_resources(emulator)
        workdir = Path(tempfile.mkdtemp(prefix="hanshu-canary-"))
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", str(emulator.url), NAMESPACE)
        kube = KubeClient(config_from_kubeconfig(str(kubeconfig)))
        await kube.create(path_for(API_VERSION, FUNCTION_PLURAL, NAMESPACE), function_body())
        for name in (NAME, f"{NAME}-v1", f"{NAME}-v2"):
            await kube.create(path_for("apps/v1", "deployments", NAMESPACE), deployment(name))
        runtimes = {
            1: start_version(workdir, NAME, 1, GOOD_HANDLER),
            2: start_version(workdir, NAME, 2, FLAKY_HANDLER),
        }
        autoscaler = AutoscalerProcess(
            "as-0",
            kubeconfig,
            NAMESPACE,
            env={"HANSHU_CANARY_INTERVAL_SECONDS": str(look)},
            quiet=True,
        ).start()

        def function() -> dict[str, Any]:
            return dict(emulator.objects[FN, NAMESPACE, NAME].raw)

        def canary_phase() -> str:
            entries = (function().get("status") or {}).get("canaries") or []
            return str(entries[0].get("phase")) if entries else ""

        def leading() -> bool:
            try:
                lease = emulator.objects["coordination.k8s.io/v1/leases", NAMESPACE, LEASE_NAME]
            except KeyError:
                return False
            return bool(lease.raw["spec"].get("holderIdentity"))

        try:
            for runtime in runtimes.values():
                await asyncio.to_thread(runtime.wait_ready)
            await until(leading)
            await until(lambda: canary_phase() == "Progressing")
            traffic = AliasTraffic(
                function,
                NAMESPACE,
                NAME,
                "live",
                {version: runtime.url for version, runtime in runtimes.items()},
                autoscaler.url,
                report_interval=report_interval,
            )
            stop = asyncio.Event()
            running = asyncio.create_task(traffic.run(rate, stop))
            await until(lambda: canary_phase() == "RolledBack")
            await asyncio.sleep(1.0)  # requests after the rollback, to see they all stay
            stop.set()
            await running
            back = traffic.unsplit_from()
            if back is None:
                raise RuntimeError("the alias still split traffic after the rollback")
            return back - crossing(traffic)
        finally:
            await asyncio.to_thread(autoscaler.stop)
            for runtime in runtimes.values():
                await asyncio.to_thread(runtime.stop)
            await kube.close()


async def main(rounds: int, rate: float, report_interval: float, look: float) -> None:
    took = []
    for index in range(rounds):
        took.append(await one_round(rate, report_interval, look))
        print(f"  round {index + 1}: {took[-1]:.2f} s", flush=True)
    print(
        f"\nCanary rollback: first bad window reported -> 100% of the alias on the old version, "
        f"{rounds} rounds ({rate:g} req/s, a report every {report_interval:g} s, "
        f"a canary look every {look:g} s)\n"
        f"  median {statistics.median(took):.2f} s   max {max(took):.2f} s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--report-interval", type=float, default=1.0)
    parser.add_argument("--look", type=float, default=1.0)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.rate, arguments.report_interval, arguments.look))
