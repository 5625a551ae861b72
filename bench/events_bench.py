"""Event trigger figures, in one run on this machine, everything a real process on loopback:
the dev platform (gateway, autoscaler, dispatcher, stream consumers, runtime replicas),
nats-server, moto's S3 server, redis-server.

1. Object upload to function start: p50 / p99 over sequential uploads (S3 -> SNS -> the
   gateway -> JetStream -> the dispatcher -> the replica).
2. Stream throughput in records/s, batchSize 1, 10 and 100, ordered and not, next to the same
   records sent as async HTTP invocations.
3. Records lost when the consumer is killed (SIGKILL, replicas too) mid-run and started
   again: target 0.

    python bench/events_bench.py [--uploads 50] [--records 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import nats
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import free_port, wait_http
from hanshu_cli.local_nats import LocalNats
from hanshu_cli.local_s3 import LocalS3

HANDLER = """
import json
import os
import time


def sink(event, context):
    started = time.time()
    lines = []
    if "records" in event:
        lines = [r["id"] for r in event["records"]]
    elif "Records" in event:
        lines = ["s3 " + r["s3"]["object"]["key"] + " " + repr(started) for r in event["Records"]]
    else:
        lines = ["http " + json.loads(event["body"])["id"]]
    with open(os.environ["RUNS_FILE"], "a") as runs:
        runs.write("".join(line + "\\n" for line in lines))
    return "ok"
"""

SHAPES = [(1, True), (1, False), (10, True), (10, False), (100, True), (100, False)]


def stream_name(size: int, ordered: bool) -> str:
    return f"B{size}{'O' if ordered else 'U'}"


def manifests(folder: Path, runs: Path, redis_url: str | None) -> Path:
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "hanshu.io/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "sink"},
            "spec": {
                "handler": "index.sink",
                "code": {"inline": {"index.py": HANDLER}},
                "concurrency": 100,
                "env": [{"name": "RUNS_FILE", "value": str(runs)}],
                "scaling": {"maxReplicas": 4, "targetConcurrency": 25},
            },
        },
        _trigger("sink-http", {"http": {"path": "/sink"}}),
        _trigger("photos", {"objectStorage": {"bucket": "photos"}}),
    ]
    for size, ordered in SHAPES:
        name = stream_name(size, ordered)
        documents.append(
            _trigger(
                name.lower(),
                {"stream": {"nats": {"stream": name}, "batchSize": size, "ordered": ordered}},
            )
        )
    if redis_url:
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "redis"},
                "stringData": {"url": redis_url},
            }
        )
        documents.append(
            _trigger(
                "ingest",
                {
                    "stream": {
                        "redis": {
                            "stream": "ingest",
                            "urlSecretRef": {"name": "redis"},
                            "startFrom": "earliest",
                        },
                        "batchSize": 10,
                    }
                },
            )
        )
    path = folder / "events.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    return path


def _trigger(name: str, source: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Trigger",
        "metadata": {"name": name},
        "spec": {"functionRef": {"name": "sink"}, **source},
    }


class Platform:
    def __init__(self, folder: Path, manifest: Path, nats_url: str) -> None:
        self.folder, self.manifest, self.nats_url = folder, manifest, nats_url
        self.port, self.internal = free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.s3_url = ""

    def start(self) -> None:
        log = (self.folder / "platform.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-u", "-m", "hanshu_cli", "dev", str(self.manifest),
                "--port", str(self.port), "--internal-port", str(self.internal),
                "--nats-url", self.nats_url, "--stable-window", "6",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_http(f"http://127.0.0.1:{self.internal}/functions", timeout=60)
        deadline = time.monotonic() + 30
        while not self.s3_url and time.monotonic() < deadline:
            found = re.search(
                r"object storage \(S3\) at (\S+), bucket photos",
                (self.folder / "platform.log").read_text(),
            )
            self.s3_url = found.group(1) if found else ""
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the platform and every process under it (its replicas, its S3)."""
        assert self.process is not None
        tree: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        doomed, queue = [], [self.process.pid]
        while queue:
            pid = queue.pop()
            doomed.append(pid)
            queue += tree.get(pid, [])
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def lines(runs: Path) -> list[str]:
    return runs.read_text().splitlines() if runs.exists() else []


async def until(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def uploads(platform: Platform, runs: Path, count: int) -> None:
    s3 = LocalS3(port=int(platform.s3_url.rsplit(":", 1)[1])).client("s3")
    from PIL import Image

    photo = io.BytesIO()
    Image.new("RGB", (64, 64)).save(photo, format="JPEG")
    delays = []
    for n in range(count + 1):
        key = f"in/{n}.jpg"
        sent = time.time()
        await asyncio.to_thread(s3.put_object, Bucket="photos", Key=key, Body=photo.getvalue())
        prefix = f"s3 {key} "

        def arrived(prefix: str = prefix) -> bool:
            return any(line.startswith(prefix) for line in lines(runs))

        await until(arrived, 60)
        started = next(float(line.split()[-1]) for line in lines(runs) if line.startswith(prefix))
        if n:  # the first wakes the Function from zero: not the steady figure
            delays.append((started - sent) * 1000)
    delays.sort()
    print(f"\n1. Object upload to function start, {count} uploads one after another (warm)")
    print(
        f"   p50 {statistics.median(delays):6.1f} ms   "
        f"p99 {delays[min(len(delays) - 1, int(len(delays) * 0.99))]:6.1f} ms   "
        f"(S3 -> SNS -> gateway -> JetStream -> dispatcher -> replica)"
    )


async def create_streams(url: str) -> None:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        for size, ordered in SHAPES:
            name = stream_name(size, ordered)
            await js.add_stream(name=name, subjects=[f"{name.lower()}.>"])
    finally:
        await client.close()


async def throughput(platform: Platform, runs: Path, records: int) -> None:
    client = await nats.connect(platform.nats_url)
    js = client.jetstream()
    results = []
    try:
        for size, ordered in SHAPES:
            name = stream_name(size, ordered)
            before = len(lines(runs))
            started = time.monotonic()
            acks = [
                await js.publish_async(f"{name.lower()}.new", json.dumps({"n": n}).encode())
                for n in range(records)
            ]
            await asyncio.gather(*acks)
            done = await until(lambda before=before: len(lines(runs)) - before >= records, 600)
            elapsed = time.monotonic() - started
            results.append((size, ordered, records / elapsed if done else 0.0))
        before = len(lines(runs))
        started = time.monotonic()
        async with aiohttp.ClientSession() as session:
            gate = asyncio.Semaphore(50)

            async def call(n: int) -> None:
                async with (
                    gate,
                    session.post(
                        f"http://127.0.0.1:{platform.port}/sink",
                        json={"id": f"h{n}"},
                        headers={"X-Hanshu-Invocation-Type": "Async"},
                    ) as reply,
                ):
                    assert reply.status == 202, await reply.text()

            await asyncio.gather(*(call(n) for n in range(records)))
        await until(lambda: len(lines(runs)) - before >= records, 600)
        async_rate = records / (time.monotonic() - started)
    finally:
        await client.close()
    print(f"\n2. Stream throughput, {records} records each (NATS JetStream source)")
    for size, ordered, rate in results:
        mode = "ordered  " if ordered else "unordered"
        print(f"   batchSize {size:>3} {mode} {rate:8.0f} records/s")
    print(f"   the same records as async HTTP invocations: {async_rate:8.0f} records/s")


async def killed_consumer(folder: Path, nats_url: str, records: int) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        print("\n3. skipped: redis-server is not installed (apt-get install redis-server)")
        return
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )
    runs = folder / "ingest.txt"
    try:
        import redis

        await asyncio.sleep(0.3)
        store = redis.Redis(port=port)
        pipe = store.pipeline()
        for n in range(records):
            pipe.xadd("ingest", {"data": json.dumps({"n": n})})
        ids = {i.decode() for i in pipe.execute()}
        manifest = manifests(folder, runs, f"redis://127.0.0.1:{port}/0")
        platform = Platform(folder, manifest, nats_url)
        platform.start()
        await until(lambda: len(set(lines(runs)) & ids) >= records * 0.3, 300)
        platform.kill()
        at_kill = len(set(lines(runs)) & ids)
        again = Platform(folder, manifest, nats_url)
        again.start()
        await until(lambda: set(lines(runs)) >= ids, 300)
        again.stop()
        seen = [line for line in lines(runs) if line in ids]
        lost = len(ids - set(seen))
        duplicates = len(seen) - len(set(seen))
        print(f"\n3. A consumer killed mid-run (SIGKILL at {at_kill} of {records} records)")
        print(
            f"   records lost {lost} (target 0), delivered twice {duplicates} "
            "(the batch it held when killed)"
        )
    finally:
        server.terminate()


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hanshu-events-bench-"))
    nats_server = LocalNats(store_dir=str(folder / "nats")).start()
    runs = folder / "runs.txt"
    platform = Platform(folder, manifests(folder, runs, None), nats_server.url)
    try:
        await create_streams(nats_server.url)  # before their consumers start
        platform.start()
        await uploads(platform, runs, args.uploads)
        await throughput(platform, runs, args.records)
        platform.stop()
        await killed_consumer(folder, nats_server.url, args.records)
    finally:
        platform.stop()
        nats_server.close()
    print(f"\nlogs: {folder}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--records", type=int, default=2000)
    asyncio.run(main(parser.parse_args()))
