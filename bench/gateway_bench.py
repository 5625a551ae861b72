"""Scale-from-zero figures: the gateway's warm overhead, the cold path, and a burst.

The platform runs in this process in its developer mode (gateway + autoscaler, each
replica a real ``hanshu_runtime`` process on loopback); load comes from hey and wrk as
separate processes.

1. Warm path: the same runtime replica called directly, through the gateway, through
   nginx (the C peer, when installed) and through the Python floor (the leanest proxy on
   the gateway's stack, ``python_floor_proxy.py``), in alternating rounds of one run:
   p50/p99 at a fixed rate (hey -q), saturated req/s (wrk), each proxy's CPU per request;
   and a route on an alias split 50/50 between two published versions (issue 28), whose
   p50 is compared with the plain route's in the same rounds (one replica process against
   two: section 5 compares like for like).
2. Cold path: from a cold request's arrival to the scale decision being issued, and to the
   reply, over repeated cold starts.
3. Burst: 1,000 concurrent requests at a zero-scaled function, counted by status.
4. Cold start through the Kubernetes seam: the cluster gateway (``KubeGateway``) against
   kmock; the cold report starts a runtime process and writes an EndpointSlice whose
   endpoint is not ready (as the Deployment and the endpoints controller would), and
   nothing ever marks it ready: the gateway's own probe finds it. Arrival to reply, next
   to the floor measured in the same run: a runtime process's start to its first answer.
5. Split route, like for like (issue 28): the split alias (two versions, one replica
   each) against a plain route to one replica, a plain route to a Function with two
   replicas, and the same alias drawing independent random numbers (the control for its
   golden-ratio draws), in alternating rounds (the order turning each round): p50/p99 at a
   fixed rate evenly spaced and in bursts, the gateway's CPU per request saturated, and how
   evenly each two-process target's work fell on its two replicas over a run.
6. Warm pool (``warm_pool_bench.py``): a cold start from zero through the local warm pool
   next to one through a process start, in alternating rounds of one run, and a runtime's
   specialization alone (code received to first answer).

    python bench/gateway_bench.py [--rate 500] [--seconds 5] [--rounds 3] [--cold-starts 20]
        [--sections warm,cold,burst,kube-cold,warm-pool,split] [--warm-pool-rounds 25]
        [--split-rounds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import yaml
from hanshu_api.versions import spec_digest, version_key, version_object_name

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (
    LoadResult,
    free_port,
    machine_times,
    process_cpu_seconds,
    run_hey,
    run_wrk,
)
from hanshu_autoscaler import Policy
from hanshu_cli.devmode import DevStack
from hanshu_gateway.loop import run
from hanshu_gateway.version_routing import AliasChoice
from kube_cold import kube_cold
from nginx_peer import nginx_in_front_of, nginx_missing
from python_floor_proxy import python_floor_in_front_of
from warm_pool_bench import cold_starts as warm_pool_cold_starts
from warm_pool_bench import specialization_alone

HELLO = "def handler(event, context):\n    return 'Hello, world!'\n"


def manifests(folder: Path) -> Path:
    def function(name: str, **scaling: object) -> dict[str, object]:
        return {
            "apiVersion": "hanshu.io/v1alpha1",
            "kind": "Function",
            "metadata": {"name": name},
            "spec": {
                "handler": "index.handler",
                "code": {"inline": {"index.py": HELLO}},
                "concurrency": 100,
                "scaling": scaling,
            },
        }

    def trigger(name: str, path: str, function: str = "", **ref: object) -> dict[str, object]:
        return {
            "apiVersion": "hanshu.io/v1alpha1",
            "kind": "Trigger",
            "metadata": {"name": name},
            "spec": {"functionRef": {"name": function or name, **ref}, "http": {"path": path}},
        }

    def published(name: str, number: int, template: dict[str, object]) -> dict[str, object]:
        return {
            "apiVersion": "hanshu.io/v1alpha1",
            "kind": "FunctionVersion",
            "metadata": {"name": version_object_name(name, number)},
            "spec": {
                "function": name,
                "version": number,
                "digest": spec_digest(template),
                "template": template,
            },
        }

    # The split route: Function "split", alias "live" = version 1 with 50 % to version 2,
    # each version one warm replica of its own.
    split = function("split", minReplicas=1, maxReplicas=1)
    template = dict(split["spec"])  # type: ignore[call-overload]
    # "coin" routes as "live" does, but the split section makes its draws independent random
    # ones (as they were before AliasChoice.next_draw) to set the two side by side.
    split["spec"]["aliases"] = [  # type: ignore[index]
        {"name": "live", "version": 1, "additionalVersion": 2, "additionalWeight": 50},
        {"name": "coin", "version": 1, "additionalVersion": 2, "additionalWeight": 50},
    ]
    documents = [
        function("warm", minReplicas=1, maxReplicas=1),
        trigger("warm", "/warm"),
        # The split route's like-for-like plain route: one Function, two replicas (the
        # split's two versions are two processes too), for the "split" section.
        function("pair", minReplicas=2, maxReplicas=2),
        trigger("pair", "/pair"),
        split,
        published("split", 1, template),
        published("split", 2, template),
        trigger("split", "/split", alias="live"),
        trigger("split-coin", "/split-coin", function="split", alias="coin"),
        # Version 1 named directly: a reply that names its version as the split's do, without
        # the alias's draw (gateway_hotpath.py sets the three side by side).
        trigger("split-v1", "/split-v1", function="split", version=1),
        function("cold", scaleToZeroGracePeriod="1s", maxReplicas=1),
        trigger("cold", "/cold"),
        function("burst", scaleToZeroGracePeriod="60s", maxReplicas=10, targetConcurrency=50),
        trigger("burst", "/burst"),
    ]
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    return path


async def in_thread(function, *args, **kwargs):  # type: ignore[no-untyped-def]
    """hey / wrk block; run them off the loop that serves the gateway."""
    return await asyncio.to_thread(function, *args, **kwargs)


async def warm_path(stack: DevStack, args: argparse.Namespace) -> None:
    entry = stack.catalog.functions[("default", "warm")]
    while not entry.pool.ready:
        await asyncio.sleep(0.05)
    for number in (1, 2):
        version = stack.catalog.functions[("default", version_key("split", number))]
        while not version.pool.ready:
            await asyncio.sleep(0.05)
    replica = entry.pool.ready[0].url
    targets = {
        "direct": f"{replica}/",
        "gateway": f"http://127.0.0.1:{stack.port}/warm",
        "split": f"http://127.0.0.1:{stack.port}/split",
    }
    upstream = replica.split("://", 1)[1]
    peer_pids: dict[str, int] = {}
    with contextlib.ExitStack() as peers:
        # The peers, in front of the same replica: nginx (C) when it is installed, and the
        # leanest Python proxy on the gateway's own stack (what Python itself costs).
        missing = nginx_missing()
        if missing is None:
            nginx = peers.enter_context(nginx_in_front_of(upstream))
            targets["nginx"], peer_pids["nginx"] = nginx.url, nginx.pid
        else:
            print(f"\n(no nginx row: {missing})")
        floor = peers.enter_context(python_floor_in_front_of(upstream))
        targets["py-floor"], peer_pids["py-floor"] = floor.url, floor.pid
        await measure_warm_path(stack, args, targets, peer_pids)


async def measure_warm_path(
    stack: DevStack, args: argparse.Namespace, targets: dict[str, str], peer_pids: dict[str, int]
) -> None:
    for url in targets.values():
        await in_thread(run_wrk, url, connections=20, seconds=2)  # warm-up
    # This machine is a shared 2-vCPU VM: back-to-back runs of the same thing differ by up to
    # 1.5x. So direct and gateway alternate, round after round, and each figure is the median
    # of the rounds (per-round differences for "added"). The gateway's CPU per request is
    # measured too: it moves least with the neighbours' load.
    # One rate, two arrival shapes: evenly spaced (one connection), and bursts of ten (ten
    # hey workers tick together), where queueing behind each other adds to the latency.
    shapes = {"evenly spaced, hey -c 1": 1, "in bursts of 10, hey -c 10": 10}
    fixed: dict[tuple[str, str], list[LoadResult]] = {}
    saturated: dict[str, list[LoadResult]] = {name: [] for name in targets}
    # Each proxy's own CPU per request: the gateway's (it runs in this process), the peers'.
    proxy_cpu: dict[str, list[float]] = {name: [] for name in targets if name != "direct"}
    # The replica's CPU per request, direct and behind the gateway, and how busy the whole
    # machine was: what bounds the saturated ratio on 2 cores.
    replica_cpu: dict[str, list[float]] = {name: [] for name in targets}
    machine_busy: dict[str, list[float]] = {name: [] for name in targets}
    (replica_pid,) = stack.platform.replica_pids(("default", "warm"))
    for _ in range(args.rounds):
        for shape, connections in shapes.items():
            for name, url in targets.items():
                fixed.setdefault((shape, name), []).append(
                    await in_thread(
                        run_hey, url, rate=args.rate, seconds=args.seconds, connections=connections
                    )
                )
        for name, url in targets.items():
            cpu_before = time.process_time()
            peer_before = {peer: process_cpu_seconds(pid) for peer, pid in peer_pids.items()}
            replica_before = process_cpu_seconds(replica_pid)
            machine_before = machine_times()
            result = await in_thread(run_wrk, url, connections=50, seconds=args.seconds)
            requests = result.requests_per_second * args.seconds
            if name in ("gateway", "split"):
                proxy_cpu[name].append((time.process_time() - cpu_before) / requests * 1e6)
            elif name in peer_pids:
                used = process_cpu_seconds(peer_pids[name]) - peer_before[name]
                proxy_cpu[name].append(used / requests * 1e6)
            replica_cpu[name].append(
                (process_cpu_seconds(replica_pid) - replica_before) / requests * 1e6
            )
            machine_after = machine_times()
            total = machine_after[0] - machine_before[0]
            machine_busy[name].append(1 - (machine_after[1] - machine_before[1]) / total)
            saturated[name].append(result)
    median = statistics.median
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(
        f"\n1. Warm path, {os.cpu_count()} cores, replica and proxies unpinned, {loop} loop; "
        f"medians of {args.rounds} alternating rounds of {args.seconds}s"
    )
    for shape in shapes:
        print(f"   fixed rate {args.rate} req/s, {shape}:")
        for name in targets:
            results = fixed[(shape, name)]
            print(
                f"     {name:<9} p50 {median(r.p50_ms for r in results):6.2f} ms   "
                f"p99 {median(r.p99_ms for r in results):6.2f} ms   "
                f"{median(r.requests_per_second for r in results):7.0f} req/s   "
                f"errors {sum(r.errors for r in results)}"
            )
        split_pairs = list(zip(fixed[(shape, "gateway")], fixed[(shape, "split")], strict=True))
        split_p50 = [s.p50_ms - g.p50_ms for g, s in split_pairs]
        print(
            "     split route (two replica processes) vs plain route (one; like for like: "
            f"--sections split), same rounds: p50 {median(split_p50):+.2f} ms, p99 "
            f"{median(s.p99_ms - g.p99_ms for g, s in split_pairs):+.2f} ms"
            f"   rounds: p50 {', '.join(f'{a:+.2f}' for a in split_p50)}"
        )
        for proxy in proxy_cpu:
            pairs = list(zip(fixed[(shape, "direct")], fixed[(shape, proxy)], strict=True))
            added_p50 = [g.p50_ms - d.p50_ms for d, g in pairs]
            added_p99 = [g.p99_ms - d.p99_ms for d, g in pairs]
            targets_note = " (target <= 1 ms)" if proxy == "gateway" else ""
            print(
                f"     added by {proxy:<9} p50 {median(added_p50):+.2f} ms{targets_note}, "
                f"p99 {median(added_p99):+.2f} ms{' (target <= 5 ms)' if targets_note else ''}"
                f"   rounds: p50 {', '.join(f'{a:+.1f}' for a in added_p50)}"
            )
    print("   saturated (wrk -c 50):")
    for name, results in saturated.items():
        print(
            f"     {name:<9} {median(r.requests_per_second for r in results):7.0f} req/s   "
            f"p50 {median(r.p50_ms for r in results):6.2f} ms   "
            f"p99 {median(r.p99_ms for r in results):6.2f} ms   "
            f"errors {sum(r.errors for r in results)}   "
            f"rounds: {', '.join(f'{r.requests_per_second:.0f}' for r in results)}"
        )
    for proxy, cpu in proxy_cpu.items():
        shares = [
            g.requests_per_second / d.requests_per_second
            for d, g in zip(saturated["direct"], saturated[proxy], strict=True)
        ]
        print(
            f"     through {proxy:<9} {median(shares):.2f}x of direct"
            f"{' (target >= 0.75x)' if proxy == 'gateway' else '                  '}   "
            f"rounds: {', '.join(f'{share:.2f}x' for share in shares)}"
        )
        print(
            f"       {proxy} process CPU per proxied request: {median(cpu):.0f} µs   "
            f"rounds: {', '.join(f'{c:.0f}' for c in cpu)}"
        )
    for name in targets:
        if name == "split":  # its replicas are the versions' own, not the one measured
            continue
        print(
            f"     {name:<9} replica CPU per request {median(replica_cpu[name]):4.0f} µs, "
            f"machine busy {median(machine_busy[name]):4.0%}"
        )


class CoinTossChoice(AliasChoice):
    """An alias whose draws are independent random ones, as they were before the alias's
    golden-ratio sequence (``AliasChoice.next_draw``): the split section's control."""

    def next_draw(self) -> float:
        return random.random()


def toss_coins(stack: DevStack) -> None:
    """The "coin" alias draws at random (again, if the catalog rebuilt it on a change)."""
    key = ("default", "split", "coin")
    choice = stack.catalog.aliases[key]
    if not isinstance(choice, CoinTossChoice):
        stack.catalog.aliases[key] = CoinTossChoice(choice.routing, choice.keys, choice.split)


async def split_like_for_like(stack: DevStack, args: argparse.Namespace) -> None:
    """Section 5: is a split route dearer than a plain one once both spread over two
    replica processes? (With one replica against two, the second process competes with the
    gateway for the 2 cores: that, not the split, is what a bursty rate would show.)"""
    keys = {
        "plain-1": [("default", "warm")],
        "plain-2": [("default", "pair")],
        "split": [("default", version_key("split", n)) for n in (1, 2)],
        "coin": [("default", version_key("split", n)) for n in (1, 2)],
    }
    for target_keys in keys.values():
        for key in target_keys:
            while not stack.catalog.functions[key].pool.ready:
                await asyncio.sleep(0.05)
    while len(stack.catalog.functions[("default", "pair")].pool.ready) < 2:
        await asyncio.sleep(0.05)
    urls = {
        "plain-1": f"http://127.0.0.1:{stack.port}/warm",
        "plain-2": f"http://127.0.0.1:{stack.port}/pair",
        "split": f"http://127.0.0.1:{stack.port}/split",
        "coin": f"http://127.0.0.1:{stack.port}/split-coin",
    }
    pids = {
        name: [pid for key in target_keys for pid in stack.platform.replica_pids(key)]
        for name, target_keys in keys.items()
    }
    for url in urls.values():
        await in_thread(run_wrk, url, connections=20, seconds=2)  # warm-up
    shapes = {"evenly spaced, hey -c 1": 1, "in bursts of 10, hey -c 10": 10}
    fixed: dict[tuple[str, str], list[LoadResult]] = {}
    # The busier replica's share of the two replicas' CPU in the bursts (0.5 = even).
    busier_share: dict[str, list[float]] = {"plain-2": [], "split": [], "coin": []}
    gateway_cpu: dict[str, list[float]] = {name: [] for name in urls}
    saturated: dict[str, list[LoadResult]] = {name: [] for name in urls}
    names = list(urls)
    for round_number in range(args.split_rounds):
        # The order turns each round, so no target always runs first (or after the same one).
        order = names[round_number % len(names) :] + names[: round_number % len(names)]
        for shape, connections in shapes.items():
            for name in order:
                toss_coins(stack)
                before = [process_cpu_seconds(pid) for pid in pids[name]]
                fixed.setdefault((shape, name), []).append(
                    await in_thread(
                        run_hey,
                        urls[name],
                        rate=args.rate,
                        seconds=args.seconds,
                        connections=connections,
                    )
                )
                if connections > 1 and name in busier_share:
                    after = [process_cpu_seconds(pid) for pid in pids[name]]
                    used = [a - b for a, b in zip(after, before, strict=True)]
                    busier_share[name].append(max(used) / sum(used))
        for name in order:
            toss_coins(stack)
            cpu_before = time.process_time()
            result = await in_thread(run_wrk, urls[name], connections=50, seconds=args.seconds)
            requests = result.requests_per_second * args.seconds
            gateway_cpu[name].append((time.process_time() - cpu_before) / requests * 1e6)
            saturated[name].append(result)
    median = statistics.median

    def rounds(values: list[float], form: str = "+.2f") -> str:
        return ", ".join(format(v, form) for v in values)

    print(
        f"\n5. Split route like for like, medians of {args.split_rounds} rounds of "
        f"{args.seconds}s (order turning): plain-1 = one replica, plain-2 = one Function with "
        "two replicas (least loaded), split = alias 50/50 over two versions, one replica each, "
        "coin = the same with independent random draws"
    )
    for shape, connections in shapes.items():
        print(f"   fixed rate {args.rate} req/s, {shape}:")
        for name in urls:
            results = fixed[(shape, name)]
            print(
                f"     {name:<8} p50 {median(r.p50_ms for r in results):6.2f} ms   "
                f"p99 {median(r.p99_ms for r in results):6.2f} ms   "
                f"errors {sum(r.errors for r in results)}"
            )
        for a, b in (
            ("split", "plain-2"),
            ("coin", "plain-2"),
            ("split", "coin"),
            ("split", "plain-1"),
            ("plain-2", "plain-1"),
        ):
            pairs = list(zip(fixed[(shape, b)], fixed[(shape, a)], strict=True))
            p50 = [x.p50_ms - y.p50_ms for y, x in pairs]
            p99 = [x.p99_ms - y.p99_ms for y, x in pairs]
            note = "  (target <= +0.2 ms)" if b == "plain-2" else ""
            print(
                f"     {a} - {b}: p50 {median(p50):+.2f} ms{note}, p99 {median(p99):+.2f} ms"
                f"   rounds: p50 {rounds(p50)}"
            )
        if connections > 1:
            for name, shares in busier_share.items():
                print(
                    f"     {name}: the busier replica's share of the two's CPU over a run "
                    f"{median(shares):.0%}   rounds: {rounds(shares, '.0%')}"
                )
    print("   saturated (wrk -c 50), the gateway's CPU per request:")
    for name in urls:
        print(
            f"     {name:<8} {median(gateway_cpu[name]):4.0f} µs   "
            f"{median(r.requests_per_second for r in saturated[name]):6.0f} req/s   "
            f"rounds: {rounds(gateway_cpu[name], '.0f')} µs"
        )
    for a, b in (("split", "plain-2"), ("coin", "plain-2"), ("split", "plain-1")):
        added = [x - y for y, x in zip(gateway_cpu[b], gateway_cpu[a], strict=True)]
        print(f"     {a} - {b}: {median(added):+.1f} µs   rounds: {rounds(added, '+.1f')}")


async def cold_path(stack: DevStack, args: argparse.Namespace) -> None:
    key = ("default", "cold")
    entry = stack.catalog.functions[key]
    replies: list[float] = []
    stack.autoscaler.cold_decision_seconds.clear()
    async with aiohttp.ClientSession() as http:
        for _ in range(args.cold_starts):
            while stack.platform.current_replicas(key) or entry.pool.ready:
                await asyncio.sleep(0.05)  # wait until it is back at zero
            started = time.perf_counter()
            async with http.get(f"http://127.0.0.1:{stack.port}/cold") as reply:
                await reply.read()
                assert reply.status == 200, reply.status
                assert reply.headers.get("X-Hanshu-Cold-Start") == "true"
            replies.append((time.perf_counter() - started) * 1000)
    decisions = [s * 1000 for s in stack.autoscaler.cold_decision_seconds]

    def p(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]

    print(f"\n2. Cold path, {len(replies)} cold starts (local runtime processes)")
    print(
        f"   arrival -> scale decision issued: p50 {statistics.median(decisions):6.2f} ms   "
        f"p90 {p(decisions, 90):6.2f} ms   max {max(decisions):6.2f} ms  (target p50 <= 10 ms)"
    )
    print(
        f"   arrival -> reply:                 p50 {statistics.median(replies):6.1f} ms   "
        f"p90 {p(replies, 90):6.1f} ms   max {max(replies):6.1f} ms"
    )


async def burst(stack: DevStack, args: argparse.Namespace) -> None:
    url = f"http://127.0.0.1:{stack.port}/burst"
    process = await asyncio.create_subprocess_exec(
        "hey",
        "-n",
        str(args.burst),
        "-c",
        str(args.burst),
        "-t",
        "120",
        url,
        stdout=asyncio.subprocess.PIPE,
    )
    out = (await process.communicate())[0].decode()
    codes = Counter(
        {int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    )
    errors = sum(int(n) for n in re.findall(r"\[(\d+)\]\s+Get", out))
    other = sum(n for code, n in codes.items() if code not in (200, 429)) + errors
    total = re.search(r"Total:\s+([\d.]+) secs", out)
    print(
        f"\n3. Burst: {args.burst} concurrent requests at a zero-scaled function "
        f"(hey -c {args.burst})"
    )
    print(
        f"   200: {codes[200]}   429: {codes[429]}   anything else: {other} (target 0)   "
        f"all answered in {float(total.group(1)) if total else float('nan'):.2f} s   "
        f"replicas at the end: {stack.platform.current_replicas(('default', 'burst'))}"
    )


async def main(args: argparse.Namespace) -> None:
    sections = set(args.sections.split(","))
    if sections & {"warm", "cold", "burst", "split"}:
        folder = Path(tempfile.mkdtemp(prefix="hanshu-gateway-bench-"))
        stack = DevStack(
            [manifests(folder)], port=free_port(), policy=Policy(stable_window=2, panic_window=1)
        )
        await stack.start()
        try:
            if "warm" in sections:
                await warm_path(stack, args)
            if "split" in sections:
                await split_like_for_like(stack, args)
            if "cold" in sections:
                await cold_path(stack, args)
            if "burst" in sections:
                await burst(stack, args)
        finally:
            await stack.stop()
    if "kube-cold" in sections:
        await kube_cold(args.kube_cold_starts)
    if "warm-pool" in sections:
        pool_args = argparse.Namespace(rounds=args.warm_pool_rounds, pool=2)
        await warm_pool_cold_starts(pool_args)
        await specialization_alone(pool_args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold-starts", type=int, default=20)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--kube-cold-starts", type=int, default=25)
    parser.add_argument("--warm-pool-rounds", type=int, default=25)
    parser.add_argument("--split-rounds", type=int, default=8)
    parser.add_argument(
        "--sections", default="warm,cold,burst,kube-cold,warm-pool,split", help="any of these"
    )
    # The loop the gateway runs on in production (uvloop; HANSHU_EVENT_LOOP=asyncio to compare).
    run(main(parser.parse_args()))
