"""The operator at scale: N Functions, each with an HTTP Trigger, in one namespace.

kmock (the Kubernetes API emulator) serves on loopback in this process; the operator runs
as its own process (``python -m hanshu_operator``) with the chart's settings that cost
memory switched on (autoscaler, metrics, a gateway to route to). A few Triggers need API
keys (a Secret each, published to the gateway's namespace) and a few are schedules (a
kopf daemon each). Printed per N: the time until every child (code ConfigMap,
Deployment, Service) exists, until every Function and every Trigger reports Ready, the
operator's peak RSS and the part of it per Function + Trigger (peak minus the RSS of the
idle operator before anything was created), and the operator's event-loop lag: the
slowest answer of its liveness endpoint (kopf serves it on the operator's loop), asked
every 0.25 s by a prober process of its own, so this process's work (kmock's) is not in it.
Then the operator restarts with everything in place, as after an OOMKill or an upgrade:
the time until the new process has resumed every Function and Trigger (its reconcile
count on /metrics), its peak RSS and its slowest liveness answer.

    python bench/scale_operator.py [--functions 1000 5000 10000] [--keys 10] [--schedules 5]

Stream Triggers are left out: each needs a NATS (or Redis) server to consume from.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import kmock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import free_port
from hanshu_api import FUNCTION_PLURAL, TRIGGER_PLURAL
from hanshu_api.kube import KubeClient, config_from_kubeconfig, path_for
from operator_bench import (
    NAMESPACE,
    ForgetfulEmulator,
    create_all,
    function,
    has_children,
    is_ready,
    peak_rss_mib,
    start_operator,
    stop_operator,
    trigger,
    wait_live,
)

from devtools.kube_emulator import declare_resources, write_kubeconfig

GATEWAY_NAMESPACE = "hanshu-system"
KEY_SECRET = "bench-api-keys"
NEVER_SOON = "0 0 1 1 *"  # once a year: a schedule that never fires during the run
TIMEOUT_SECONDS = 1800.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scale_trigger(index: int, count: int, keys: int, schedules: int) -> dict[str, Any]:
    """An HTTP Trigger; the first ``keys`` of ``count`` need an API key, the last
    ``schedules`` are schedules instead (every Function still has exactly one Trigger)."""
    body: dict[str, Any] = trigger(index)
    spec = body["spec"]
    if index < keys:
        spec["http"]["auth"] = {"apiKeySecretRef": {"name": KEY_SECRET, "key": "api-key"}}
    elif index >= count - schedules:
        del spec["http"]
        spec["schedule"] = {"cron": NEVER_SOON, "timeZone": "UTC"}
    return body


def probe(url: str) -> None:
    """Ask ``url`` every 0.25 s until stdin closes; then print the slowest and p99 answer
    times, in seconds. A reply that takes long is the operator's loop busy elsewhere."""
    import threading

    times: list[float] = []
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    while not done.wait(0.25):
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=120) as reply:
                reply.read()
        except OSError:
            pass  # counted as slow as it was: a refused or timed-out probe is lag too
        times.append(time.perf_counter() - started)
    times.sort()
    p99 = times[int(len(times) * 0.99) - 1] if times else float("nan")
    print(f"{times[-1] if times else float('nan')} {p99} {len(times)}", flush=True)


class Prober:
    """The liveness prober as a process of its own (see ``probe``)."""

    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--probe", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def finish(self) -> tuple[float, float, int]:
        out, _ = self.process.communicate(timeout=180)
        slowest, p99, count = out.split()
        return float(slowest), float(p99), int(count)


def reconciled(metrics_port: int) -> int:
    """How many reconciles of Functions and Triggers have succeeded, from /metrics."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=60) as reply:
        text = reply.read().decode()
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("hanshu_operator_reconciles_total{") and 'outcome="success"' in line
    )


class Operator:
    """The operator process with the chart's settings that cost memory: the autoscaler,
    metrics, a gateway to route to. Started again, it is a restart: a new process that
    lists every Function and Trigger and resumes each."""

    def __init__(self, kubeconfig: Path, log: Path | None, code: Path | None = None) -> None:
        self.kubeconfig, self.log = kubeconfig, log
        self.liveness, self.metrics = free_port(), free_port()
        # Another source tree's operator (its operator/ and api/ folders), to compare.
        path = {"PYTHONPATH": f"{code}/operator:{code}/api"} if code is not None else {}
        self.env = {
            **path,
            "HANSHU_OPERATOR_METRICS_PORT": str(self.metrics),
            "HANSHU_GATEWAY_URL": "http://gateway.example",
            # Nothing listens there: schedules are due once a year, nothing is invoked.
            "HANSHU_GATEWAY_INTERNAL_URL": f"http://127.0.0.1:{free_port()}",
            "HANSHU_GATEWAY_NAMESPACE": GATEWAY_NAMESPACE,
        }

    async def start(self) -> subprocess.Popen[bytes]:
        process = start_operator(self.kubeconfig, self.liveness, self.log, **self.env)
        await wait_live(self.liveness)
        return process

    def prober(self) -> Prober:
        return Prober(f"http://127.0.0.1:{self.liveness}/healthz")


async def run(
    count: int, keys: int, schedules: int, log: Path | None, code: Path | None = None
) -> dict[str, float]:
    async with ForgetfulEmulator() as emulator, kmock.Server(emulator):
        declare_resources(emulator)
        workdir = Path(tempfile.mkdtemp(prefix="hanshu-scale-"))
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", str(emulator.url), NAMESPACE)
        setup = Operator(kubeconfig, log, code)
        operator = await setup.start()
        kube = KubeClient(config_from_kubeconfig(str(kubeconfig)))
        prober: Prober | None = None
        try:
            idle_rss = rss_mib(operator.pid)
            prober = setup.prober()
            if keys:
                await kube.create(
                    path_for("v1", "secrets", NAMESPACE),
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": KEY_SECRET, "namespace": NAMESPACE},
                        "data": {"api-key": "YmVuY2gta2V5"},
                    },
                )
            names = [f"fn-{i:04d}" for i in range(count)]
            started = time.perf_counter()
            await create_all(
                kube,
                count,
                lambda i: [
                    (FUNCTION_PLURAL, function(i)),
                    (TRIGGER_PLURAL, scale_trigger(i, count, keys, schedules)),
                ],
            )
            created = time.perf_counter() - started
            # Check only what is still pending, and not too often: the checks share this
            # process's one core with kmock, which is what the operator is waiting for.
            without_children, functions_pending, triggers_pending = (
                set(names),
                set(names),
                set(names),
            )
            children_at = 0.0
            last_report = 0.0
            while functions_pending or triggers_pending:
                await asyncio.sleep(0.5)
                now = time.perf_counter() - started
                without_children -= {n for n in without_children if has_children(emulator, n)}
                functions_pending -= {
                    n for n in functions_pending - without_children if is_ready(emulator, n)
                }
                triggers_pending -= {
                    n for n in triggers_pending if is_ready(emulator, n, TRIGGER_PLURAL)
                }
                if not without_children and not children_at:
                    children_at = now
                if now - last_report >= 30:
                    last_report = now
                    print(
                        f"  {now:4.0f} s: {len(without_children)} without children, "
                        f"{len(functions_pending)} Functions and {len(triggers_pending)} "
                        f"Triggers not Ready, operator RSS {rss_mib(operator.pid):.0f} MiB",
                        file=sys.stderr,
                        flush=True,
                    )
                if now > TIMEOUT_SECONDS:
                    raise TimeoutError(
                        f"after {TIMEOUT_SECONDS:.0f}s: {len(without_children)} without "
                        f"children, {len(functions_pending)} Functions and "
                        f"{len(triggers_pending)} Triggers not Ready"
                    )
                if operator.poll() is not None:
                    raise RuntimeError(f"the operator exited with {operator.returncode}")
            ready_at = time.perf_counter() - started
            peak = peak_rss_mib(operator.pid)
            slowest, p99, probes = prober.finish()
            prober = None
            stop_operator(operator)

            # The restart: every Function and Trigger exists; the new process lists them
            # all at once and resumes each (the burst that OOMKilled the operator).
            restarted = time.perf_counter()
            operator = await setup.start()
            prober = setup.prober()
            while await asyncio.to_thread(reconciled, setup.metrics) < 2 * count:
                await asyncio.sleep(0.5)
                if time.perf_counter() - restarted > TIMEOUT_SECONDS:
                    raise TimeoutError("the restarted operator did not resume everything")
                if operator.poll() is not None:
                    raise RuntimeError(f"the operator exited with {operator.returncode}")
            resumed_at = time.perf_counter() - restarted
            restart_peak = peak_rss_mib(operator.pid)
            restart_slowest, _p99, _probes = prober.finish()
            prober = None
        finally:
            if prober is not None:
                prober.process.kill()
            await kube.close()
            stop_operator(operator)
    figures = {
        "count": count,
        "created": created,
        "children": children_at,
        "ready": ready_at,
        "idle_rss": idle_rss,
        "peak_rss": peak,
        "per_1000": (peak - idle_rss) / count * 1000,
        "lag_max": slowest,
        "lag_p99": p99,
        "probes": probes,
        "resumed": resumed_at,
        "restart_peak": restart_peak,
        "restart_lag_max": restart_slowest,
    }
    print(
        f"\n{count} Functions + {count} Triggers ({keys} with API keys, {schedules} schedules) "
        f"against kmock, operator as its own process ({os.cpu_count()} cores)\n"
        f"  all created through the API in               {created:8.1f} s\n"
        f"  every child (ConfigMap, Deployment, Service) {children_at:8.1f} s\n"
        f"  every Function and Trigger Ready             {ready_at:8.1f} s\n"
        f"  operator RSS idle / peak                     {idle_rss:6.1f} / {peak:6.1f} MiB\n"
        f"  per 1,000 Functions + Triggers               {figures['per_1000']:8.1f} MiB\n"
        f"  liveness answer max / p99 ({probes} probes)     {slowest:6.2f} / {p99:6.2f} s\n"
        f"  restarted: all {2 * count} resumed in            {resumed_at:8.1f} s\n"
        f"  restarted: peak RSS, liveness answer max     {restart_peak:6.1f} MiB, "
        f"{restart_slowest:.2f} s",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--functions", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--keys", type=int, default=10, help="Triggers with API keys")
    parser.add_argument("--schedules", type=int, default=5, help="schedule Triggers")
    parser.add_argument("--log", type=Path, help="write the operator's output here")
    parser.add_argument(
        "--code",
        type=Path,
        help="run the operator of this source tree (e.g. `git archive <commit> operator api`)",
    )
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe)
        return
    rows = [
        asyncio.run(run(n, args.keys, args.schedules, args.log, args.code)) for n in args.functions
    ]
    print(
        "\n| Functions + Triggers | children | all Ready | peak RSS | MiB per 1,000 | lag max "
        "| restart: all resumed | restart: peak RSS | restart: lag max |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['count']:,.0f} | {row['children']:.0f} s | {row['ready']:.0f} s "
            f"| {row['peak_rss']:.0f} MiB | {row['per_1000']:.1f} | {row['lag_max']:.2f} s "
            f"| {row['resumed']:.0f} s | {row['restart_peak']:.0f} MiB "
            f"| {row['restart_lag_max']:.2f} s |"
        )


if __name__ == "__main__":
    main()
