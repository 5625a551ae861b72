"""The gateway's own Python cost per proxied request, without sockets: a figure that holds
still on a noisy machine.

The saturated figures of ``gateway_bench.py`` move by up to 1.5x between back-to-back runs on
a shared 2-vCPU VM, so a cut worth 5% cannot be seen there. This drives the real gateway of
the developer mode (routing, stats, metrics, the public server's parser and writer,
the upstream client's request writer and reply parser) with fake transports at both ends:
the caller's connection is fed a request, and the replica's connection answers it at once,
on the next loop iteration. What is left out is only the kernel's part (four socket calls
and the event loop's polling per request), which ``gateway_bench.py`` measures.

Side by side, in alternating rounds with the first: a route on one published version (its
reply names the version) and a route on an alias split 50/50 between two published versions
(issue 28): what naming a version costs, and what the per-request draw adds to that.

    python bench/gateway_hotpath.py [--requests 20000] [--rounds 5] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import free_port
from gateway_bench import manifests
from hanshu_api.versions import version_key
from hanshu_autoscaler import Policy
from hanshu_cli.devmode import DevStack
from hanshu_gateway import public_http, upstream
from hanshu_gateway.loop import run

# What the runtime answers for the hello function, and what hey sends.
REPLY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 13\r\n"
    b"X-Request-Id: 1f0c\r\nDate: Sat, 28 Nov 2026 12:00:00 GMT\r\n"
    b"Server: Python/3.11 aiohttp/3.13\r\n\r\nHello, world!"
)
REQUEST = (
    b"GET /warm HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: hey/0.0.1\r\n"
    b"Accept-Encoding: gzip\r\n\r\n"
)
SPLIT_REQUEST = REQUEST.replace(b"GET /warm ", b"GET /split ")
VERSION_REQUEST = REQUEST.replace(b"GET /warm ", b"GET /split-v1 ")
# What each route adds over the one before it: naming a version (the reply's
# X-Hanshu-Version, the version's own entry), then the alias's lookup and draw.
ROUTES = {REQUEST: "plain route", VERSION_REQUEST: "one version", SPLIT_REQUEST: "split alias"}


class ReplicaTransport:
    """The replica's side of an upstream connection: answers each request at once."""

    def __init__(self, connection: upstream._Connection) -> None:
        self.connection = connection
        self.loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        self.loop.call_soon(self.connection.data_received, REPLY)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


class CallerTransport:
    """The caller's side of a public connection: hands each reply to whoever waits."""

    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self.reply is not None and not self.reply.done():
            self.reply.set_result(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def close(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def measure(stack: DevStack, args: argparse.Namespace) -> None:
    for key in ("warm", version_key("split", 1), version_key("split", 2)):
        entry = stack.catalog.functions[("default", key)]
        while not entry.pool.ready:
            await asyncio.sleep(0.05)

    async def connect(self: upstream.UpstreamPool, endpoint: object) -> upstream._Connection:
        connection = upstream._Connection()
        connection.connection_made(ReplicaTransport(connection))  # type: ignore[arg-type]
        return connection

    upstream.UpstreamPool._connect = connect  # type: ignore[method-assign]
    assert stack.gateway is not None
    assert stack.gateway._public is not None
    stack.gateway._upstream.close()  # no real connection is reused
    loop = asyncio.get_running_loop()
    caller = CallerTransport()
    connection = public_http._PublicConnection(stack.gateway._public)
    connection.connection_made(caller)  # type: ignore[arg-type]

    async def one(request: bytes = REQUEST) -> bytes:
        caller.reply = loop.create_future()
        connection.data_received(request)
        return await caller.reply

    for request in ROUTES:
        first = await one(request)
        assert first.startswith(b"HTTP/1.1 200 OK"), first
        assert first.endswith(b"Hello, world!"), first
        for _ in range(args.requests // 10):
            await one(request)  # warm-up
    per_request: dict[bytes, list[float]] = {request: [] for request in ROUTES}
    for _ in range(args.rounds):
        for request, figures in per_request.items():  # alternating: the same noise for both
            started = time.process_time()
            for _ in range(args.requests):
                await one(request)
            figures.append((time.process_time() - started) / args.requests * 1e6)
    for request, name in ROUTES.items():
        figures = per_request[request]
        print(
            f"gateway Python CPU per proxied request ({name}), fake sockets, "
            f"{type(loop).__module__} loop: median {statistics.median(figures):.1f} µs, "
            f"min {min(figures):.1f} µs   rounds: {', '.join(f'{v:.1f}' for v in figures)}"
        )
    for base, route, what in (
        (REQUEST, SPLIT_REQUEST, "the split alias over the plain route"),
        (REQUEST, VERSION_REQUEST, "naming a version over the plain route"),
        (VERSION_REQUEST, SPLIT_REQUEST, "the alias's draw over one version"),
    ):
        added = [s - p for p, s in zip(per_request[base], per_request[route], strict=True)]
        print(
            f"added by {what}: median {statistics.median(added):+.1f} µs per request   "
            f"rounds: {', '.join(f'{a:+.1f}' for a in added)}"
        )
    if args.profile:  # one round of each route, so their profiles can be set side by side
        for request, name in ROUTES.items():
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(args.requests):
                await one(request)
            profile.disable()
            print(f"\n--- {name}, {args.requests} requests")
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)
    connection.connection_lost(None)  # gone before the gateway closes, as a caller would be


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hanshu-gateway-hotpath-"))
    stack = DevStack([manifests(folder)], port=free_port(), policy=Policy())
    await stack.start()
    try:
        await measure(stack, args)
    finally:
        await stack.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--profile", action="store_true", help="then cProfile one round of each route"
    )
    run(main(parser.parse_args()))
