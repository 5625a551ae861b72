"""Async invocation figures: how fast the gateway takes async calls, and how a batch of
10,000 runs from zero, also while a dispatcher is killed and while nats-server restarts.

Everything is a real process on loopback: nats-server with JetStream on disk, the dev
platform (gateway, autoscaler, runtime replicas) with ``--no-dispatcher``, and two
``python -m hanshu_dispatcher`` processes. Each run of the function appends its invocation
id to a file, so "ran exactly once" and duplicates are counted from what really ran.

1. Accept rate: wrk POSTs with ``X-Hanshu-Invocation-Type: Async`` (stored, 202) next to
   the same POSTs answered synchronously by a warm replica, in one run.
2. 10,000 invocations from zero (one Batch call): time until all are done.
3. The same with one of the two dispatchers killed (SIGKILL) and restarted mid-run.
4. The same with nats-server stopped and started again mid-run (its storage kept).

Each of 2-4 reports what ran twice (target 0 with no fault and with the NATS restart: a
redelivery finds the final record and is skipped; a killed dispatcher may rerun what it
was running) and what was lost (target 0 for all), then a summary line per fault.

    python bench/async_bench.py [--events 10000] [--seconds 10] [--faults none,nats]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import nats
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import free_port, run_wrk, wait_http
from hanshu_api.invocations import STREAM, subject_for
from hanshu_cli.local_nats import LocalNats

HANDLER = """
import os


def handler(event, context):
    # One line per run: O_APPEND writes this small are whole even from many processes.
    with open(os.environ["RUNS_FILE"], "a") as runs:
        runs.write(context.invocation_id + "\\n")
    return "ok"


def hello(event, context):
    return "Hello, world!"
"""

ACCEPT_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"order": 42}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Hanshu-Invocation-Type"] = "Async"
"""
SYNC_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"order": 42}'
wrk.headers["Content-Type"] = "application/json"
"""


def manifests(folder: Path, runs_file: Path) -> Path:
    env = [{"name": "RUNS_FILE", "value": str(runs_file)}]

    def function(name: str, handler: str, **scaling: object) -> dict[str, object]:
        return {
            "apiVersion": "hanshu.io/v1alpha1",
            "kind": "Function",
            "metadata": {"name": name},
            "spec": {
                "handler": f"index.{handler}",
                "code": {"inline": {"index.py": HANDLER}},
                "concurrency": 100,
                "env": env,
                "scaling": {"scaleToZeroGracePeriod": "3s", **scaling},
            },
        }

    def trigger(name: str) -> dict[str, object]:
        return {
            "apiVersion": "hanshu.io/v1alpha1",
            "kind": "Trigger",
            "metadata": {"name": name},
            "spec": {"functionRef": {"name": name}, "http": {"path": f"/{name}"}},
        }

    path = folder / "manifests.yaml"
    documents = [
        function("hello", "hello", minReplicas=1, maxReplicas=1),
        trigger("hello"),
        function("work", "handler", maxReplicas=4, targetConcurrency=25),
        trigger("work"),
    ]
    path.write_text(yaml.safe_dump_all(documents))
    return path


@dataclass
class Bench:
    folder: Path
    runs_file: Path
    nats: LocalNats
    port: int = field(default_factory=free_port)
    internal_port: int = field(default_factory=free_port)
    autoscaler_port: int = field(default_factory=free_port)
    platform: subprocess.Popen[bytes] | None = None
    dispatchers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_platform(self) -> None:
        log = (self.folder / "platform.log").open("ab")
        self.platform = subprocess.Popen(
            [
                sys.executable, "-m", "hanshu_cli", "dev",
                str(manifests(self.folder, self.runs_file)),
                "--port", str(self.port),
                "--internal-port", str(self.internal_port),
                "--autoscaler-port", str(self.autoscaler_port),
                "--nats-url", self.nats.url,
                "--no-dispatcher",
                "--stable-window", "6",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_http(f"http://127.0.0.1:{self.internal_port}/functions")
        deadline = time.monotonic() + 30
        while self._ready().get("async") != "connected":
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not connect to NATS")
            time.sleep(0.05)

    def _ready(self) -> dict[str, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.internal_port}/readyz") as reply:
            return json.load(reply)  # type: ignore[no-any-return]

    def start_dispatcher(self, index: int) -> subprocess.Popen[bytes]:
        log = (self.folder / f"dispatcher-{index}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "hanshu_dispatcher"],
            env={
                **os.environ,
                "HANSHU_NATS_URL": self.nats.url,
                "HANSHU_GATEWAY_INTERNAL_URL": f"http://127.0.0.1:{self.internal_port}",
                "HANSHU_AUTOSCALER_URL": f"http://127.0.0.1:{self.autoscaler_port}",
                "HANSHU_DISPATCHER_PORT": str(free_port()),
                "HANSHU_DISPATCHER_HOST": "127.0.0.1",
                "HANSHU_DISPATCH_CONCURRENCY": "100",
                # What a killed dispatcher held comes back after this long without heartbeats.
                "HANSHU_ACK_WAIT_SECONDS": "5",
                "HANSHU_RETRY_BASE_SECONDS": "0.2",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return process

    def stop(self) -> None:
        for process in [*self.dispatchers, self.platform]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.dispatchers, self.platform]:
            if process is not None:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.nats.close()


def job_status(bench: Bench, location: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{bench.url}{location}", timeout=30) as reply:
        return json.load(reply)  # type: ignore[no-any-return]


def submit_batch(bench: Bench, events: int) -> tuple[str, float]:
    body = "\n".join(json.dumps({"n": n}) for n in range(events)).encode()
    request = urllib.request.Request(
        f"{bench.url}/work",
        data=body,
        headers={"X-Hanshu-Invocation-Type": "Batch", "Content-Type": "application/x-ndjson"},
        method="POST",
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=120) as reply:
        job = json.load(reply)
    return str(job["status"]), time.monotonic() - started


async def accept_rate(bench: Bench, seconds: int) -> None:
    scripts = {}
    for name, text in (("async", ACCEPT_SCRIPT), ("sync", SYNC_SCRIPT)):
        path = bench.folder / f"{name}.lua"
        path.write_text(text)
        scripts[name] = str(path)
    url = f"{bench.url}/hello"
    await asyncio.to_thread(run_wrk, url, connections=20, seconds=2, script=scripts["sync"])
    sync = await asyncio.to_thread(
        run_wrk, url, connections=50, seconds=seconds, script=scripts["sync"]
    )
    stored = await asyncio.to_thread(
        run_wrk, url, connections=50, seconds=seconds, script=scripts["async"]
    )
    # What was stored here is not part of what follows: drop it unrun.
    client = await nats.connect(bench.nats.url)
    try:
        await client.jetstream().purge_stream(STREAM, subject=subject_for(("default", "hello")))
    finally:
        await client.close()
    print(f"\n1. Accept rate at the gateway, wrk -c 50, {seconds}s, {os.cpu_count()} cores")
    print(
        f"   sync, answered by a warm replica: {sync.requests_per_second:7.0f} req/s   "
        f"p50 {sync.p50_ms:6.2f} ms   p99 {sync.p99_ms:6.2f} ms   errors {sync.errors}"
    )
    print(
        f"   async, stored in JetStream (202): {stored.requests_per_second:7.0f} req/s   "
        f"p50 {stored.p50_ms:6.2f} ms   p99 {stored.p99_ms:6.2f} ms   errors {stored.errors}"
    )


class Figures(NamedTuple):
    fault: str
    events: int
    ran_twice: int
    lost: int
    per_second: float


# What each fault is called on the command line, and its title.
FAULTS = {
    "none": "",
    "dispatcher": ", a dispatcher killed mid-run",
    "nats": ", nats-server restarted mid-run",
}


async def run_job(bench: Bench, events: int, title: str, disturb: str | None) -> Figures:
    bench.runs_file.write_text("")
    location, submit_seconds = await asyncio.to_thread(submit_batch, bench, events)
    started = time.monotonic() - submit_seconds
    disturbed = ""
    status: dict[str, object] = {}
    while True:
        status = await asyncio.to_thread(job_status, bench, location)
        done = int(status["succeeded"]) + int(status["failed"])  # type: ignore[call-overload]
        if disturb and not disturbed and done >= events * 0.3:
            disturbed = await asyncio.to_thread(disturb_now, bench, disturb)
        if status["state"] == "Finished":
            break
        if time.monotonic() - started > 600:
            print(f"   gave up after 600 s: {status}")
            break
        await asyncio.sleep(0.5)
    elapsed = time.monotonic() - started
    ran = Counter(line for line in bench.runs_file.read_text().splitlines() if line)
    once = sum(1 for count in ran.values() if count == 1)
    duplicates = sum(count - 1 for count in ran.values())
    never_ran = events - len(ran)
    lost = events - int(status["succeeded"])  # type: ignore[call-overload]
    print(f"\n{title}")
    if disturbed:
        print(f"   {disturbed}")
    print(
        f"   {events} events: stored in {submit_seconds:.2f} s, all done after "
        f"{elapsed:.1f} s ({events / elapsed:.0f}/s)"
    )
    print(
        f"   ran exactly once {once}, duplicate runs {duplicates}, never ran {never_ran}, "
        f"lost (not Succeeded) {lost} (target 0)"
    )
    # Back to zero before the next run, so it starts cold too.
    await asyncio.sleep(8)
    return Figures(disturb or "none", events, duplicates, lost, events / elapsed)


def disturb_now(bench: Bench, what: str) -> str:
    if what == "dispatcher":
        victim = bench.dispatchers[0]
        victim.kill()
        victim.wait()
        bench.dispatchers[0] = bench.start_dispatcher(0)
        return "killed dispatcher 1 of 2 with SIGKILL at 30% done and started a new one"
    bench.nats.stop()
    stopped = time.monotonic()
    bench.nats.start()
    return (
        f"stopped nats-server (SIGTERM) at 30% done and started it again on the same "
        f"storage {time.monotonic() - stopped:.2f} s later"
    )


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hanshu-async-bench-"))
    bench = Bench(folder, folder / "runs.txt", LocalNats(store_dir=str(folder / "nats")))
    bench.nats.start()
    try:
        bench.start_platform()
        await accept_rate(bench, args.seconds)
        bench.dispatchers = [bench.start_dispatcher(0), bench.start_dispatcher(1)]
        figures = []
        for number, (fault, what) in enumerate(FAULTS.items(), start=2):
            if fault in args.faults:
                title = f"{number}. {args.events} invocations from zero{what}"
                disturb = None if fault == "none" else fault
                figures.append(await run_job(bench, args.events, title, disturb))
    finally:
        bench.stop()
    print("\nfault         events  ran twice  lost  invocations/s")
    for row in figures:
        print(
            f"{row.fault:<12} {row.events:7d} {row.ran_twice:10d} {row.lost:5d} "
            f"{row.per_second:14.0f}"
        )
    print(f"\nlogs: {folder}")


def fault_list(text: str) -> list[str]:
    faults = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown fault(s) {unknown}; pick from {list(FAULTS)}")
    return faults


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--faults",
        type=fault_list,
        default=list(FAULTS),
        help="which batch runs to make, comma-separated: none,dispatcher,nats (all)",
    )
    asyncio.run(main(parser.parse_args()))
