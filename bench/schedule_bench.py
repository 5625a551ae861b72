"""Schedule figures: how close to its tick a schedule fires with two dispatchers, and that
each tick fires once, also while one dispatcher is killed (SIGKILL) half-way.

Everything is a real process on loopback: nats-server with JetStream, the dev platform
(gateway, autoscaler, a warm runtime replica) with ``--no-dispatcher``, which publishes the
schedule Trigger into the catalog bucket, and two dispatcher processes. The dispatchers tick
every second (cron counts minutes; the tick source is the only difference from
``python -m hanshu_dispatcher``), so a minute gives sixty ticks.

Jitter is measured twice per tick: "stored" is the gateway's ``enqueuedAt`` of the tick's
invocation minus the tick (what the dispatchers control: waking on time and one call), "ran"
is when the handler started minus the tick (adds the async path: the pull, the gateway, the
replica).

    python bench/schedule_bench.py [--ticks 60] [--kill]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import dispatcher_env, free_port, stop_all, wait_http
from hanshu_cli.local_nats import LocalNats

HANDLER = """
import json
import os
import time


def handler(event, context):
    with open(os.environ["RUNS_FILE"], "a") as runs:
        runs.write(json.dumps({"tick": event["triggerTime"], "id": context.invocation_id,
                               "at": time.time()}) + "\\n")
    return "ok"
"""

# The real dispatcher, ticking every second.
EVERY_SECOND_DISPATCHER = """
import datetime
from hanshu_dispatcher.__main__ import main
main(lambda entry, after: after.replace(microsecond=0) + datetime.timedelta(seconds=1))
"""


def manifests(folder: Path, runs_file: Path) -> Path:
    path = folder / "manifests.yaml"
    documents = [
        {
            "apiVersion": "hanshu.io/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "ticker"},
            "spec": {
                "handler": "index.handler",
                "code": {"inline": {"index.py": HANDLER}},
                "env": [{"name": "RUNS_FILE", "value": str(runs_file)}],
                "scaling": {"minReplicas": 1, "maxReplicas": 1},
            },
        },
        {
            "apiVersion": "hanshu.io/v1alpha1",
            "kind": "Trigger",
            "metadata": {"name": "every-tick"},
            "spec": {"functionRef": {"name": "ticker"}, "schedule": {"cron": "* * * * *"}},
        },
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
    platform: subprocess.Popen[bytes] | None = None
    dispatchers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_platform(self) -> None:
        log = (self.folder / "platform.log").open("ab")
        self.platform = subprocess.Popen(
            [
                sys.executable, "-m", "hanshu_cli", "dev",
                str(manifests(self.folder, self.runs_file)),
                "--port", str(self.port),
                "--internal-port", str(self.internal_port),
                "--nats-url", self.nats.url,
                "--no-dispatcher",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_http(f"http://127.0.0.1:{self.internal_port}/functions")

    def start_dispatcher(self, index: int) -> subprocess.Popen[bytes]:
        log = (self.folder / f"dispatcher-{index}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-c", EVERY_SECOND_DISPATCHER],
            env=dispatcher_env(self.nats.url, self.internal_port),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def runs(self) -> list[dict[str, object]]:
        if not self.runs_file.exists():
            return []
        text = self.runs_file.read_text()
        complete = text[: text.rfind("\n") + 1]  # a last line still being written waits
        return [json.loads(line) for line in complete.splitlines() if line]

    def enqueued_at(self, invocation_id: str) -> float:
        url = f"http://127.0.0.1:{self.port}/_hanshu/invocations/{invocation_id}"
        with urllib.request.urlopen(url) as reply:
            text = str(json.load(reply)["enqueuedAt"]).replace("Z", "+00:00")
        return datetime.datetime.fromisoformat(text).timestamp()

    def stop(self) -> None:
        stop_all([*self.dispatchers, self.platform])
        self.nats.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hanshu-schedule-bench-"))
    bench = Bench(folder, folder / "runs.ndjson", LocalNats(store_dir=str(folder / "nats")))
    bench.nats.start()
    try:
        bench.start_platform()
        bench.dispatchers = [bench.start_dispatcher(0), bench.start_dispatcher(1)]
        deadline = time.monotonic() + args.ticks + 60
        while len({run["tick"] for run in bench.runs()}) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # the first ticks: both dispatchers up, the replica warm
        first_seen = min(str(run["tick"]) for run in bench.runs())
        first = datetime.datetime.fromisoformat(first_seen.replace("Z", "+00:00"))
        first += datetime.timedelta(seconds=2)  # measure from a tick both dispatchers saw
        expected = [first + datetime.timedelta(seconds=n) for n in range(args.ticks)]
        wanted = {tick.strftime("%Y-%m-%dT%H:%M:%SZ") for tick in expected}
        killed = False
        while time.monotonic() < deadline:
            seen = {str(run["tick"]) for run in bench.runs()} & wanted
            if args.kill and not killed and len(seen) >= args.ticks // 2:
                bench.dispatchers[0].kill()
                killed = True
            if len(seen) == len(wanted):
                break
            time.sleep(0.1)
        runs_by_tick: dict[str, list[dict[str, object]]] = defaultdict(list)
        for run in bench.runs():
            if run["tick"] in wanted:
                runs_by_tick[str(run["tick"])].append(run)
        stored: list[float] = []
        ran: list[float] = []
        fires_per_tick: list[int] = []
        for tick_time in expected:
            tick = tick_time.strftime("%Y-%m-%dT%H:%M:%SZ")
            runs = runs_by_tick.get(tick, [])
            ids = {str(run["id"]) for run in runs}
            fires_per_tick.append(len(ids))
            if not runs:
                continue
            at = tick_time.timestamp()
            ran.append(min(float(str(run["at"])) for run in runs) - at)
            stored.append(bench.enqueued_at(sorted(ids)[0]) - at)
    finally:
        bench.stop()
    missing = fires_per_tick.count(0)
    twice = sum(1 for n in fires_per_tick if n > 1)
    title = "two dispatchers" + (", one SIGKILLed half-way" if args.kill else "")
    print(f"Schedule ticking every second for {args.ticks} s, {title}:")
    print(f"  ticks fired once: {fires_per_tick.count(1)}, missing: {missing}, twice: {twice}")
    for name, values in (("stored", stored), ("ran", ran)):
        if values:
            print(
                f"  jitter {name:6} (ms): p50 {1000 * statistics.median(values):7.1f}   "
                f"p99 {1000 * percentile(values, 0.99):7.1f}   max {1000 * max(values):7.1f}"
            )
    print(f"  (logs in {folder})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=60)
    parser.add_argument("--kill", action="store_true", help="SIGKILL one dispatcher half-way")
    main(parser.parse_args())
