"""Hanshu at 1,000 / 5,000 / 10,000 Functions with HTTP Triggers: the gateway's half.

kmock (the Kubernetes API emulator) serves in this process with N Functions, N HTTP
Triggers (every 100th route contested by a newer rival, which must lose) and N
EndpointSlices; the gateway runs as its own process (``python -m hanshu_gateway``), as in a
cluster, and is started from nothing, as after a restart. Printed per N:

- ready: process start -> ``/readyz`` 200 (every list loaded, the route table complete);
- first 200: process start -> the first request served by a replica through a route;
- slowest /healthz: the longest a liveness check waited while the gateway loaded (the
  kubelet's probe gives up after its timeoutSeconds);
- loop lag max / p99: the gateway's own ``hanshu_event_loop_lag_seconds`` after loading;
- peak RSS, and its growth per Function (with its Trigger and slice) over an empty
  gateway's.

The operator's half (time to children and Ready, its peak RSS) is
``bench/scale_operator.py``; both run here when it is present.

    python bench/scale_bench.py [--sizes 1000,5000,10000]

A real cluster (KUBECONFIG) is not driven here: applying 10,000 Functions to it is the
operator benchmark's job, and this one measures the gateway's start against whatever the
API server serves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import kmock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from common import free_port, gateway_env  # noqa: E402
from operator_bench import ForgetfulEmulator, peak_rss_mib  # noqa: E402

from devtools.kube_emulator import (  # noqa: E402
    declare_resources,
    preload_http_functions,
    write_kubeconfig,
)

NAMESPACE = "bench"
CODE = ROOT / "tests" / "integration" / "runtime_code"


@dataclass(frozen=True)
class GatewayFigures:
    functions: int
    ready_seconds: float
    first_reply_seconds: float
    slowest_health_seconds: float
    lag_max: float
    lag_p99: float
    peak_rss_mib: float


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=30)) as reply:
            body = await reply.read()
            return reply.status, body
    except (aiohttp.ClientError, TimeoutError):
        return 0, b""


async def gateway_run(count: int, replica_port: int) -> GatewayFigures:
    emulator = ForgetfulEmulator()
    declare_resources(emulator)
    preload_http_functions(emulator, NAMESPACE, count, ready_port=replica_port, contested_every=100)
    async with emulator, kmock.Server(emulator):  # on loopback, from this process
        with tempfile.TemporaryDirectory() as folder:
            kubeconfig = write_kubeconfig(Path(folder) / "kubeconfig", str(emulator.url), NAMESPACE)
            port, internal = free_port(), free_port()
            started = time.monotonic()
            gateway = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "hanshu_gateway",
                env=gateway_env(kubeconfig, NAMESPACE, port, internal),
                stdout=subprocess.DEVNULL,
                stderr=None if os.environ.get("BENCH_GATEWAY_LOG") else subprocess.DEVNULL,
            )
            try:
                return await _measure(count, gateway.pid, port, internal, started)
            finally:
                gateway.terminate()
                await gateway.wait()


# A process of its own polls /healthz as the kubelet would: this process's loop also
# serves kmock, so its own requests would wait behind the lists it serves.
_PROBER = """
import sys, time, urllib.request
admin, slowest = sys.argv[1], 0.0
while True:
    asked = time.monotonic()
    try:
        urllib.request.urlopen(admin + "/healthz", timeout=30).read()
        slowest = max(slowest, time.monotonic() - asked)
    except OSError:
        pass
    try:
        if urllib.request.urlopen(admin + "/readyz", timeout=30).status == 200:
            break
    except OSError:
        pass
    time.sleep(0.05)
print(slowest)
"""


async def _measure(
    count: int, pid: int, port: int, internal: int, started: float
) -> GatewayFigures:
    admin = f"http://127.0.0.1:{internal}"
    prober = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _PROBER, admin, stdout=asyncio.subprocess.PIPE
    )
    output, _ = await asyncio.wait_for(prober.communicate(), timeout=600)
    slowest = float(output)
    async with aiohttp.ClientSession() as http:
        ready = time.monotonic() - started
        while count and (await _get(http, f"http://127.0.0.1:{port}/fn/0/"))[0] != 200:
            await asyncio.sleep(0.01)
        first = time.monotonic() - started if count else float("nan")
        if count > 100:  # a contested route is its oldest claimant's (with the replica)
            status, _ = await _get(http, f"http://127.0.0.1:{port}/fn/100/")
            assert status == 200, f"/fn/100 answered {status}: served by the wrong owner"
        _, body = await _get(http, f"{admin}/healthz")
    # A gateway older than the loop-lag meter (run with --code for a before/after) has none.
    nan = float("nan")
    lag = json.loads(body).get("eventLoopLag") or {"maxSeconds": nan, "p99Seconds": nan}
    return GatewayFigures(
        count,
        ready,
        first,
        slowest,
        lag["maxSeconds"],
        lag["p99Seconds"],
        peak_rss_mib(pid),
    )


@contextlib.contextmanager
def replica() -> Any:
    """A real runtime process serving the echo handler: the replica of fn-00000."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "hanshu_runtime"],
        env={
            **os.environ,
            "HANSHU_HANDLER": "handlers.echo",
            "HANSHU_CODE_DIR": str(CODE),
            "HANSHU_HOST": "127.0.0.1",
            "HANSHU_PORT": str(port),
            "HANSHU_ADMIN_PORT": str(free_port()),
            "HANSHU_TERMINATION_LOG": os.path.join(tempfile.gettempdir(), f"hanshu-{port}"),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)


def print_gateway(rows: list[GatewayFigures]) -> None:
    base = next((row for row in rows if row.functions == 0), None)
    print("\nGateway: started beside N Functions, each with an HTTP Trigger and a slice")
    print(
        f"{'N':>7} {'ready s':>8} {'1st 200 s':>9} {'slowest':>8} {'lag max':>8} "
        f"{'lag p99':>8} {'peak RSS':>9} {'KiB/fn':>7}"
    )
    for row in rows:
        per = (
            (row.peak_rss_mib - base.peak_rss_mib) * 1024 / row.functions
            if base is not None and row.functions
            else float("nan")
        )
        print(
            f"{row.functions:>7,} {row.ready_seconds:>8.2f} {row.first_reply_seconds:>9.2f} "
            f"{row.slowest_health_seconds * 1000:>6.0f}ms {row.lag_max * 1000:>6.0f}ms "
            f"{row.lag_p99 * 1000:>6.0f}ms {row.peak_rss_mib:>7.1f}Mi {per:>7.1f}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--skip-operator", action="store_true")
    args = parser.parse_args()
    sizes = [0] + [int(size) for size in args.sizes.split(",")]
    rows = []
    with replica() as port:
        for size in sizes:
            rows.append(await gateway_run(size, port))
            print(f"  gateway with {size:,} Functions: ready in {rows[-1].ready_seconds:.2f}s")
    print_gateway(rows)
    operator_half = ROOT / "bench" / "scale_operator.py"
    if not args.skip_operator and operator_half.exists():
        print("\nOperator: python bench/scale_operator.py --sizes", args.sizes, flush=True)
        subprocess.run([sys.executable, str(operator_half), "--sizes", args.sizes], check=False)


if __name__ == "__main__":
    asyncio.run(main())
