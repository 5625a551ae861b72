"""Warm pool figures: a cold start from zero through the pool next to one through a
process start, in the same run, and a runtime's specialization alone.

1. Cold start from zero, arrival to reply (dev mode in this process: the gateway, the
   autoscaler, the local warm pool; every replica a real ``hanshu_runtime`` process on
   loopback). Rounds alternate between two kinds of Function, each called once from zero:
   an eligible one (served by a specialized pool process, its own replica starting in
   parallel) and an ineligible one (a Secret in its env: served by its own replica, the
   process start). Before each round the pool is full and the previous round's replica
   ready, so rounds do not overlap.
2. Runtime specialization alone: a runtime process in pool mode, the specialize request
   sent (code received) to the first answer of a hello handler on the function port.

    python bench/warm_pool_bench.py [--rounds 25] [--pool 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import free_port
from hanshu_api.warm_pool import (
    POOL_MODE_ENV,
    POOL_TOKEN_ENV,
    SPECIALIZE_PATH,
    SpecializeRequest,
)
from hanshu_autoscaler import Policy
from hanshu_cli.devmode import DevStack
from hanshu_gateway.loop import run

HELLO = "def handler(event, context):\n    return 'Hello, world!'\n"
SECRET_ENV = [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def row(name: str, values: list[float], target: str = "") -> str:
    return (
        f"   {name:<34} p50 {statistics.median(values):7.1f} ms   "
        f"p99 {percentile(values, 99):7.1f} ms   max {max(values):7.1f} ms   "
        f"n={len(values)}{target}"
    )


def manifests(folder: Path, rounds: int) -> Path:
    def function(name: str, env: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "apiVersion": "hanshu.io/v1alpha1",
            "kind": "Function",
            "metadata": {"name": name},
            "spec": {
                "handler": "index.handler",
                "code": {"inline": {"index.py": HELLO}},
                "env": env,
                "scaling": {"scaleToZeroGracePeriod": "1s", "maxReplicas": 1},
            },
        }

    def trigger(name: str) -> dict[str, Any]:
        return {
            "apiVersion": "hanshu.io/v1alpha1",
            "kind": "Trigger",
            "metadata": {"name": name},
            "spec": {"functionRef": {"name": name}, "http": {"path": f"/{name}"}},
        }

    documents = []
    for index in range(rounds):
        documents += [function(f"pooled-{index}", []), trigger(f"pooled-{index}")]
        documents += [function(f"started-{index}", SECRET_ENV), trigger(f"started-{index}")]
    path = folder / "warm-pool-bench.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    return path


async def cold_starts(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hanshu-warm-pool-bench-"))
    stack = DevStack(
        [manifests(folder, args.rounds)],
        port=free_port(),
        nats_url="off",
        warm_pool=args.pool,
        policy=Policy(stable_window=2, panic_window=1),
    )
    await stack.start()
    times: dict[str, list[float]] = {"pool": [], "pod_start": []}
    try:
        assert stack.local_pool is not None
        async with aiohttp.ClientSession() as http:
            for index in range(args.rounds):
                for kind, name in (("pool", f"pooled-{index}"), ("pod_start", f"started-{index}")):
                    await stack.local_pool.until_full()
                    started = time.perf_counter()
                    async with http.get(f"http://127.0.0.1:{stack.port}/{name}") as reply:
                        await reply.read()
                        path = reply.headers.get("X-Hanshu-Cold-Start-Path")
                    elapsed = (time.perf_counter() - started) * 1000
                    assert reply.status == 200, (name, reply.status)
                    assert path == kind, (name, path)
                    times[kind].append(elapsed)
                    # The Function's own replica starts either way: let it be ready (and the
                    # pool process retired) before the next round.
                    pool = stack.catalog.functions[("default", name)].pool
                    while pool.temporary or not pool.ready:
                        await asyncio.sleep(0.02)
        specialize = [s * 1000 for s in stack.local_pool.specialize_seconds]
    finally:
        await stack.stop()
    print(
        f"\n1. Cold start from zero, arrival to reply, {args.rounds} rounds alternating "
        f"(dev mode, warm pool of {args.pool} local processes, {os.cpu_count()} cores)"
    )
    print(row("through the warm pool", times["pool"]))
    print(row("through a process start", times["pod_start"]))
    print(row("  of which: specialize call", specialize))
    saved = statistics.median(times["pod_start"]) - statistics.median(times["pool"])
    print(f"   the pool saves {saved:.0f} ms at the median")


async def specialization_alone(args: argparse.Namespace) -> None:
    code_root = Path(tempfile.mkdtemp(prefix="hanshu-specialize-bench-"))
    to_ready: list[float] = []
    to_answer: list[float] = []
    in_runtime: list[float] = []
    async with aiohttp.ClientSession() as http:
        for index in range(args.rounds):
            port, admin_port = free_port(), free_port()
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "hanshu_runtime",
                env={
                    **os.environ,
                    POOL_MODE_ENV: "1",
                    POOL_TOKEN_ENV: "bench-token",
                    "HANSHU_HOST": "127.0.0.1",
                    "HANSHU_PORT": str(port),
                    "HANSHU_ADMIN_PORT": str(admin_port),
                    "HANSHU_TERMINATION_LOG": str(code_root / f"{index}.log"),
                },
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                while True:  # until it waits in the pool
                    try:
                        async with http.get(f"http://127.0.0.1:{admin_port}/healthz") as reply:
                            if reply.status == 200:
                                break
                    except aiohttp.ClientError:
                        await asyncio.sleep(0.01)
                request = SpecializeRequest(
                    "default",
                    "hello",
                    1,
                    {
                        "HANSHU_HANDLER": "index.handler",
                        "HANSHU_CODE_DIR": str(code_root / str(index)),
                        "HANSHU_FUNCTION_NAME": "hello",
                    },
                    {"index.py": HELLO},
                ).encode()
                sent = time.perf_counter()
                async with http.post(
                    f"http://127.0.0.1:{admin_port}{SPECIALIZE_PATH}",
                    data=request,
                    headers={"Authorization": "Bearer bench-token"},
                ) as reply:
                    body = await reply.json()
                    assert reply.status == 200, body
                ready = time.perf_counter()
                async with http.get(f"http://127.0.0.1:{port}/") as reply:
                    assert await reply.text() == "Hello, world!"
                answered = time.perf_counter()
                to_ready.append((ready - sent) * 1000)
                to_answer.append((answered - sent) * 1000)
                in_runtime.append(body["specializeSeconds"] * 1000)
            finally:
                process.terminate()
                await process.wait()
    print(f"\n2. Runtime specialization alone, hello handler, {args.rounds} pool processes")
    print(row("in the runtime (parse to loaded)", in_runtime))
    print(row("code sent -> 200 (serving)", to_ready))
    print(row("code sent -> first answer", to_answer, "  (target p50 <= 30 ms)"))


async def main(args: argparse.Namespace) -> None:
    sections = set(args.sections.split(","))
    if "cold" in sections:
        await cold_starts(args)
    if "specialize" in sections:
        await specialization_alone(args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--pool", type=int, default=2)
    parser.add_argument("--sections", default="cold,specialize")
    run(main(parser.parse_args()))
