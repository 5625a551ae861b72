"""Warm-path throughput of the function runtime against its peers, in one run.

The same trivial hello handler served by: Hanshu's runtime; Google's functions-framework
with its production server (gunicorn); a bare aiohttp app (the ceiling). One server process
each, pinned to one core, wrk pinned to the other, same connections and duration.

    python bench/runtime_bench.py [--seconds 10] [--connections 50] [--boots 9]

Before the load, the boot: from a process's start to its first answer (what a cold start
waits for on top of the pod), for the runtime, a bare aiohttp app and bare Python, started
in turns (each pinned to core 1) and asked every 2 ms from core 0; medians. Two more rows
say where the rest goes: Python importing asyncio alone (the floor of any asyncio server),
and the runtime with no bytecode to read (an image built without it, on a read-only root
filesystem, compiles every module at every start: why the runtime image compiles them).
Every row starts as the image starts the runtime: bytecode compiled ahead, and without this
development venv's .pth hooks (``python -S``, packages on PYTHONPATH).

It also times what the runtime builds for every request (the two-dialect event and the
context) in this process, and prints that as a share of one request's time on the
server's core: the event may grow, but not by more than a few percent of a request.
"""

from __future__ import annotations

import argparse
import compileall
import os
import signal
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import timeit
from typing import Any

from common import ROOT, LoadResult, free_port, pinned, run_wrk, wait_http

HELLO = os.path.join(ROOT, "bench", "hello")


def hanshu(handler: str, port: int) -> tuple[list[str], dict[str, str]]:
    return [sys.executable, "-m", "hanshu_runtime"], {
        "HANSHU_HANDLER": handler,
        "HANSHU_CODE_DIR": HELLO,
        "HANSHU_HOST": "127.0.0.1",
        "HANSHU_PORT": str(port),
        "HANSHU_ADMIN_PORT": str(free_port()),
        "HANSHU_LOG_LEVEL": "WARNING",
    }


def servers(port: int) -> dict[str, tuple[list[str], dict[str, str]]]:
    python = sys.executable
    return {
        "hanshu runtime": hanshu("hanshu_hello.handler", port),
        "hanshu (async def)": hanshu("hanshu_hello.async_handler", port),
        "functions-framework": (
            [
                os.path.join(os.path.dirname(python), "functions-framework"),
                "--target",
                "hello",
                "--source",
                os.path.join(HELLO, "ff_hello.py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            {},
        ),
        "bare aiohttp": ([python, os.path.join(HELLO, "aiohttp_hello.py"), str(port)], {}),
    }


# The request wrk sends, and one a browser or SDK sends (headers, a query, a JSON body,
# under a stripped prefix): the event's cost grows with what it copies.
PER_REQUEST_SHAPES: dict[str, dict[str, Any]] = {
    "wrk GET /": {
        "method": "GET",
        "path": "/",
        "raw_query": "",
        "headers": [("Host", "127.0.0.1:8080")],
        "body": b"",
    },
    "browser POST": {
        "method": "POST",
        "path": "/orders/42",
        "raw_query": "tag=a&tag=b&q=x",
        "headers": [
            ("Host", "api.example.com"),
            ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)"),
            ("Accept", "application/json"),
            ("Accept-Encoding", "gzip, deflate, br"),
            ("Content-Type", "application/json"),
            ("Cookie", "session=s-1; theme=dark"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
        ],
        "body": b'{"item": "tea", "quantity": 2}',
        "prefix": "/shop",
    },
}


def per_request_build_us() -> dict[str, float]:
    """Microseconds to build one event and one context with the code the server runs, on
    the server's core, the best of many short runs (the least disturbed by neighbours)."""
    import logging

    from hanshu_runtime.context import Context, FunctionInfo, invocation_of
    from hanshu_runtime.http_events import HttpRequest, build_event
    from multidict import CIMultiDict

    function = FunctionInfo("hello", "hanshu_hello.handler", "1", 128, 30.0, "default", "pod")
    logger = logging.getLogger("bench")
    costs: dict[str, float] = {}
    for name, shape in PER_REQUEST_SHAPES.items():
        request = HttpRequest(client_ip="127.0.0.1", **shape)
        headers = CIMultiDict(shape["headers"])

        def build() -> None:
            build_event(request, "0123456789ab-00000001")  # noqa: B023 (timed at once)
            invocation_id, attempt, kind = invocation_of(headers, "r")  # noqa: B023
            Context("r", function, time.monotonic(), logger, invocation_id, attempt, kind)

        number = 10_000
        costs[name] = min(timeit.repeat(build, number=number, repeat=30)) / number * 1e6
    return costs


def start(command: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        pinned(1, command),
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_http(f"http://127.0.0.1:{port}/")
    return process


def first_answer_ms(command: list[str], env: dict[str, str], port: int | None) -> float:
    """Start to the first 200 on GET / (or to the exit, for a command that serves nothing)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        pinned(1, command), env={**os.environ, **env}, stdout=subprocess.DEVNULL
    )
    try:
        if port is None:
            process.wait()
            return (time.perf_counter() - started) * 1000
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                    conn.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                    if conn.recv(16).startswith(b"HTTP/1.1 200"):
                        return (time.perf_counter() - started) * 1000
            except OSError:
                pass  # not listening yet
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited before it answered")
            time.sleep(0.002)
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=30)


def boot(rounds: int) -> None:
    # Every process is started as the image starts the runtime: our modules' bytecode
    # compiled ahead (the Dockerfiles run compileall), and no site hooks. This dev venv's
    # editable install and other .pth files import code at every start (~30 ms here) that
    # the image has not; `python -S` with the packages on PYTHONPATH leaves them out, for
    # every row alike.
    # hanshu_wire: the HTTP/1.1 rules the runtime shares with the gateway (its image has it).
    for package in ("runtime/hanshu_runtime", "wire/hanshu_wire"):
        compileall.compile_dir(os.path.join(ROOT, package), quiet=1)
    image_like = {
        "PYTHONPATH": os.pathsep.join(
            [
                os.path.join(ROOT, "runtime"),
                os.path.join(ROOT, "wire"),
                sysconfig.get_paths()["purelib"],
            ]
        )
    }
    python = sys.executable
    boots: dict[str, list[float]] = {
        "hanshu runtime": [],
        "bare aiohttp": [],
        "bare python": [],
        "python + asyncio": [],
        "hanshu, no .pyc": [],
    }
    with tempfile.TemporaryDirectory() as empty:
        for _ in range(rounds):
            port = free_port()
            _, env = hanshu("hanshu_hello.handler", port)
            runtime = [python, "-S", "-m", "hanshu_runtime"]
            boots["hanshu runtime"].append(first_answer_ms(runtime, {**env, **image_like}, port))
            port = free_port()
            aiohttp_app = [python, "-S", os.path.join(HELLO, "aiohttp_hello.py"), str(port)]
            boots["bare aiohttp"].append(first_answer_ms(aiohttp_app, image_like, port))
            bare = [python, "-S", "-c", "pass"]
            boots["bare python"].append(first_answer_ms(bare, image_like, None))
            asyncio_only = [python, "-S", "-c", "import asyncio"]
            boots["python + asyncio"].append(first_answer_ms(asyncio_only, image_like, None))
            # An image whose bytecode was never compiled, on a read-only root: every start
            # compiles every module again (what `pip install --no-compile` did to ours).
            port = free_port()
            _, env = hanshu("hanshu_hello.handler", port)
            no_bytecode = {
                **env,
                **image_like,
                "PYTHONPYCACHEPREFIX": empty,
                "PYTHONDONTWRITEBYTECODE": "1",
            }
            boots["hanshu, no .pyc"].append(first_answer_ms(runtime, no_bytecode, port))
    print(f"\nboot: process start -> first answer, {rounds} rounds in turns (median, min-max)")
    for name, values in boots.items():
        print(
            f"  {name:<18}{statistics.median(values):>7.1f} ms   "
            f"({min(values):.0f}-{max(values):.0f})"
        )
    ours = statistics.median(boots["hanshu runtime"])
    print(
        f"  hanshu runtime: {ours:.1f} ms = "
        f"{ours / statistics.median(boots['bare aiohttp']):.2f}x a bare aiohttp app's boot "
        "(target <= 120 ms)"
    )


def median(results: list[LoadResult]) -> LoadResult:
    """The round with the median req/s: this VM's neighbours make single runs noisy."""
    return sorted(results, key=lambda r: r.requests_per_second)[len(results) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--boots", type=int, default=9)
    args = parser.parse_args()
    if args.boots:
        boot(args.boots)
    if not args.rounds:
        return
    ports = {name: free_port() for name in servers(0)}
    processes = {}
    try:
        for name, port in ports.items():
            command, env = servers(port)[name]
            processes[name] = start(command, env, port)
            run_wrk(f"http://127.0.0.1:{port}/", connections=args.connections, seconds=2)
        # Interleave the servers round by round so a noisy minute hurts them all alike.
        rounds: dict[str, list[LoadResult]] = {name: [] for name in ports}
        for _ in range(args.rounds):
            for name, port in ports.items():
                rounds[name].append(
                    run_wrk(
                        f"http://127.0.0.1:{port}/",
                        connections=args.connections,
                        seconds=args.seconds,
                    )
                )
    finally:
        for process in processes.values():
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    results = {name: median(values) for name, values in rounds.items()}
    print(
        f"\nhello handler, wrk -t1 -c{args.connections} -d{args.seconds}s x {args.rounds} "
        f"interleaved rounds (median), {os.cpu_count()} cores, server pinned to core 1, "
        "wrk to core 0"
    )
    print(
        f"{'server':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}   all rounds req/s"
    )
    for name, r in results.items():
        every = " ".join(f"{x.requests_per_second:.0f}" for x in rounds[name])
        print(
            f"{name:<22}{r.requests_per_second:>10.0f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}"
            f"{r.errors:>8}   {every}"
        )
    ours, ours_async, ff, bare = (
        results[n]
        for n in ("hanshu runtime", "hanshu (async def)", "functions-framework", "bare aiohttp")
    )
    vs_ff = ours.requests_per_second / ff.requests_per_second
    vs_bare = ours.requests_per_second / bare.requests_per_second
    async_vs_bare = ours_async.requests_per_second / bare.requests_per_second
    print(
        f"\nhanshu / functions-framework req/s: {vs_ff:.2f}x  (target >= 2x), "
        f"p99 {ours.p99_ms:.2f} vs {ff.p99_ms:.2f} ms (target: no worse)"
    )
    print(f"hanshu / bare aiohttp req/s:        {vs_bare:.2f}x  (target >= 0.7x)")
    print(f"hanshu async def / bare aiohttp:    {async_vs_bare:.2f}x")
    # Pinned to one core, the server spends 1/rps of a second on each request.
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    request_us = 1e6 / ours.requests_per_second
    print(f"\nper request, event + context built in-process (one request = {request_us:.0f} us):")
    notes = {
        "wrk GET /": "the request above; target: a few percent",
        "browser POST": "a heavier request against the same time: an upper bound",
    }
    for name, cost in per_request_build_us().items():
        print(
            f"  {name:<14}{cost:>7.2f} us  = {cost / request_us:>5.1%} of a request ({notes[name]})"
        )


if __name__ == "__main__":
    main()
