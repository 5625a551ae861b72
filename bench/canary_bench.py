"""How long a bad canary keeps its share of traffic once the figures show it is bad, measured
through the real gateway.

Per round: kmock (the Kubernetes API emulator) serves on loopback in this process, with a
Function whose alias ``live`` runs a canary of version 2 at 20 % (one step, so it never
moves on, ``maxErrorRate`` 5 %, ``minRequests`` 10), its versions 1 and 2 published
(FunctionVersions) and each served by a real runtime process behind its EndpointSlice,
version 2 answering 500 to one call in five, and an HTTP Trigger on the alias. One
``python -m hanshu_autoscaler`` process leads; ``python -m hanshu_gateway`` serves the
Trigger, routing by the Function's effective routing as its watch of the Function shows it
(the canary controller's ``status.aliases``), and reports its own per-version figures to
the autoscaler every ``--report-interval`` seconds, through a relay in this process that
notes when each report passed (and forwards it at once). Requests go to the gateway at
``--rate`` a second, one after another.

The figure, from the first bad window reported to all traffic on the old version: from the
relay's passing the first report whose figures for version 2, summed since the traffic
began, hold at least ``minRequests`` requests and more than 5 % errors, to the first
request after which every request was served by version 1 (the gateway's
``X-Hanshu-Version`` reply header; every other request comes from a sticky caller whom the
20 % split sends to version 2, so the switch shows within two requests' time). It takes
in the report's trip, the controller's look (a report of a version under a canary wakes it
at once; ``--look``, HANSHU_CANARY_INTERVAL_SECONDS, is only the longest wait between
looks), the status write, and the gateway's watch of the Function carrying the new routing
to its route.

    python bench/canary_bench.py [--rounds 5] [--rate 100] [--report-interval 1] [--look 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import kmock
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hanshu_api import (
    API_VERSION,
    FUNCTION_PLURAL,
    LABEL_FUNCTION,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    TRIGGER_PLURAL,
)
from hanshu_api.kube import KubeClient, config_from_kubeconfig, path_for
from hanshu_api.stats_report import StatsReport
from hanshu_api.versions import (
    FUNCTION_VERSION_KIND,
    FUNCTION_VERSION_PLURAL,
    LABEL_VERSION,
    LABEL_VERSION_OF,
    STICKY_HEADER,
    AliasRouting,
    pick_version,
    spec_digest,
    sticky_draw,
    version_key,
    version_object_name,
)

from devtools.autoscaler_process import LEASE_NAME, AutoscalerProcess, free_port
from devtools.canary_traffic import (
    FLAKY_HANDLER,
    GOOD_HANDLER,
    GatewayTraffic,
    start_gateway,
    start_version,
)
from devtools.kube_emulator import ApplyingEmulator, declare_resources, write_kubeconfig

NAMESPACE = "bench"
NAME = "shop"
FN = f"{API_VERSION}/{FUNCTION_PLURAL}"
MIN_REQUESTS = 10
MAX_ERROR_RATE = 0.05
TEMPLATE = {"handler": "index.handler", "code": {"image": "x"}}
CANARY = AliasRouting("live", 1, 2, 20)
# A sticky caller whom the canary's split sends to version 2.
MARKER = next(
    caller
    for caller in (f"caller-{n}" for n in range(1000))
    if pick_version(CANARY, sticky_draw(caller, "live")) == 2
)


def function_body() -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "uid": "uid-shop"},
        "spec": {
            **TEMPLATE,
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


def function_version(version: int) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": FUNCTION_VERSION_KIND,
        "metadata": {
            "name": version_object_name(NAME, version),
            "namespace": NAMESPACE,
            "labels": {LABEL_VERSION_OF: NAME, LABEL_VERSION: str(version)},
        },
        "spec": {
            "function": NAME,
            "version": version,
            "digest": spec_digest(TEMPLATE),
            "template": TEMPLATE,
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


def endpoint_slice(key: str, port: int) -> dict[str, Any]:
    """A version's ready replica, as the EndpointSlice controller publishes it."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{key}-abcde",
            "namespace": NAMESPACE,
            "labels": {LABEL_FUNCTION: key, "kubernetes.io/service-name": key},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
    }


def alias_trigger() -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Trigger",
        "metadata": {"name": "live", "namespace": NAMESPACE},
        "spec": {"functionRef": {"name": NAME, "alias": "live"}, "http": {"path": f"/{NAME}"}},
    }


class ReportRelay:
    """Passes the gateway's stats reports on to the autoscaler, noting when each passed and
    version 2's figures in it."""

    def __init__(self, autoscaler_url: str) -> None:
        self.target = autoscaler_url.rstrip("/") + "/stats"
        self.port = free_port()
        # (time.monotonic(), version 2's (requests, errors) in the report)
        self.reports: list[tuple[float, tuple[int, int]]] = []
        self._http: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _relay(self, request: web.Request) -> web.Response:
        passed = time.monotonic()  # the autoscaler answers after its look and writes
        raw = await request.read()
        assert self._http is not None
        async with self._http.post(
            self.target, data=raw, headers={"Content-Type": "application/json"}
        ) as reply:
            body, status = await reply.read(), reply.status
        self.reports.append((passed, self._figures(raw)))
        return web.Response(body=body, status=status, content_type="application/json")

    @staticmethod
    def _figures(raw: bytes) -> tuple[int, int]:
        report = StatsReport.parse(json.loads(raw))
        key = version_key(NAME, 2)
        for stat in report.functions:
            if stat.name == key and stat.outcomes is not None:
                return stat.outcomes.requests, stat.outcomes.errors
        return 0, 0

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[ReportRelay]:
        app = web.Application()
        app.router.add_post("/stats", self._relay)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._http = aiohttp.ClientSession()
        try:
            yield self
        finally:
            await self._http.close()
            await runner.cleanup()

    def crossing(self, since: float) -> float:
        """When the first report passed whose figures for version 2, summed since
        ``since``, cross the threshold."""
        requests = errors = 0
        for at, (more_requests, more_errors) in self.reports:
            if at < since:
                continue
            requests, errors = requests + more_requests, errors + more_errors
            if requests >= MIN_REQUESTS and errors / requests > MAX_ERROR_RATE:
                return at
        raise RuntimeError("no report crossed the threshold")


async def until(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the condition was not met")
        await asyncio.sleep(0.01)


async def answers(url: str) -> bool:
    with contextlib.suppress(aiohttp.ClientError):
        async with aiohttp.ClientSession() as http, http.get(url) as reply:
            return reply.status == 200
    return False


async def one_round(rate: float, report_interval: float, look: float) -> float:
    emulator = ApplyingEmulator()
    async with emulator, kmock.Server(emulator):
        declare_resources(emulator)
        workdir = Path(tempfile.mkdtemp(prefix="hanshu-canary-"))
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", str(emulator.url), NAMESPACE)
        kube = KubeClient(config_from_kubeconfig(str(kubeconfig)))
        runtimes = {
            1: start_version(workdir, NAME, 1, GOOD_HANDLER),
            2: start_version(workdir, NAME, 2, FLAKY_HANDLER),
        }
        await kube.create(path_for(API_VERSION, FUNCTION_PLURAL, NAMESPACE), function_body())
        for version, runtime in runtimes.items():
            await kube.create(
                path_for(API_VERSION, FUNCTION_VERSION_PLURAL, NAMESPACE), function_version(version)
            )
            await kube.create(
                path_for("discovery.k8s.io/v1", "endpointslices", NAMESPACE),
                endpoint_slice(version_key(NAME, version), runtime.port),
            )
        for name in (NAME, version_key(NAME, 1), version_key(NAME, 2)):
            await kube.create(path_for("apps/v1", "deployments", NAMESPACE), deployment(name))
        await kube.create(path_for(API_VERSION, TRIGGER_PLURAL, NAMESPACE), alias_trigger())
        autoscaler = AutoscalerProcess(
            "as-0",
            kubeconfig,
            NAMESPACE,
            env={"HANSHU_CANARY_INTERVAL_SECONDS": str(look)},
            quiet=True,
        ).start()
        relay = ReportRelay(autoscaler.url)
        gateway = None

        def canary_phase() -> str:
            raw = emulator.objects[FN, NAMESPACE, NAME].raw
            entries = (raw.get("status") or {}).get("canaries") or []
            return str(entries[0].get("phase")) if entries else ""

        def leading() -> bool:
            try:
                lease = emulator.objects["coordination.k8s.io/v1/leases", NAMESPACE, LEASE_NAME]
            except KeyError:
                return False
            return bool(lease.raw["spec"].get("holderIdentity"))

        try:
            async with relay.serving():
                gateway = start_gateway(kubeconfig, NAMESPACE, relay.url, report_interval)
                for runtime in runtimes.values():
                    await asyncio.to_thread(runtime.wait_ready)
                await until(leading)
                await until(lambda: canary_phase() == "Progressing")
                await until(lambda: answers(f"{gateway.url}/{NAME}"))
                # Every other request from a caller the split sends to version 2 while it
                # lasts: the first of them that version 1 serves marks the switch within a
                # request's time (random callers alone leave runs of version 1 by chance).
                traffic = GatewayTraffic(f"{gateway.url}/{NAME}", ({}, {STICKY_HEADER: MARKER}))
                began = time.monotonic()
                stop = asyncio.Event()
                running = asyncio.create_task(traffic.run(rate, stop))
                await until(lambda: canary_phase() == "RolledBack")
                await asyncio.sleep(1.0)  # requests after the rollback, to see they all stay
                stop.set()
                await running
                back = traffic.all_on_from(1)
                if back is None:
                    raise RuntimeError("version 2 still served requests after the rollback")
                return back - relay.crossing(since=began)
        finally:
            if gateway is not None:
                await asyncio.to_thread(gateway.stop)
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
        f"\nCanary rollback through the gateway: first bad window reported -> 100% of the "
        f"alias's requests on the old version, {rounds} rounds ({rate:g} req/s, a report "
        f"every {report_interval:g} s, a canary look every {look:g} s)\n"
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
