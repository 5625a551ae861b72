"""Warm-path throughput of the function runtime against its peers, in one run.

The same trivial hello handler served by: Hanshu's runtime; Google's functions-framework
with its production server (gunicorn); a bare aiohttp app (the ceiling). One server process
each, pinned to one core, wrk pinned to the other, same connections and duration.

    python bench/runtime_bench.py [--seconds 10] [--connections 50]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from common import ROOT, LoadResult, free_port, pinned, run_wrk, wait_http

HELLO = os.path.join(ROOT, "bench", "hello")


def servers(port: int) -> dict[str, tuple[list[str], dict[str, str]]]:
    python = sys.executable
    return {
        "hanshu runtime": (
            [python, "-m", "hanshu_runtime"],
            {
                "HANSHU_HANDLER": "hanshu_hello.handler",
                "HANSHU_CODE_DIR": HELLO,
                "HANSHU_HOST": "127.0.0.1",
                "HANSHU_PORT": str(port),
                "HANSHU_ADMIN_PORT": str(free_port()),
                "HANSHU_LOG_LEVEL": "WARNING",
            },
        ),
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


def measure(
    name: str, command: list[str], env: dict[str, str], port: int, args: argparse.Namespace
) -> LoadResult:
    process = subprocess.Popen(
        pinned(1, command),
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_http(url)
        run_wrk(url, connections=args.connections, seconds=2)  # warm-up
        return run_wrk(url, connections=args.connections, seconds=args.seconds)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    results: dict[str, LoadResult] = {}
    for name in servers(0):
        port = free_port()
        command, env = servers(port)[name]
        results[name] = measure(name, command, env, port, args)
    print(
        f"\nhello handler, wrk -t1 -c{args.connections} -d{args.seconds}s, "
        f"{os.cpu_count()} cores, server pinned to core 1"
    )
    print(f"{'server':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, r in results.items():
        print(
            f"{name:<22}{r.requests_per_second:>10.0f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}"
            f"{r.errors:>8}"
        )
    ours, ff, bare = (results[n] for n in ("hanshu runtime", "functions-framework", "bare aiohttp"))
    vs_ff = ours.requests_per_second / ff.requests_per_second
    vs_bare = ours.requests_per_second / bare.requests_per_second
    print(
        f"\nhanshu / functions-framework req/s: {vs_ff:.2f}x  (target >= 2x), "
        f"p99 {ours.p99_ms:.2f} vs {ff.p99_ms:.2f} ms (target: no worse)"
    )
    print(f"hanshu / bare aiohttp req/s:        {vs_bare:.2f}x  (target >= 0.7x)")


if __name__ == "__main__":
    main()
