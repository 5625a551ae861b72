"""Event trigger figures, in one run on this machine, everything a real process on loopback:
the dev platform (gateway, autoscaler, runtime replicas), dispatcher processes (which read
the streams), nats-server, moto's S3 server, redis-server.

1. Object upload to function start: p50 / p99 over sequential uploads (S3 -> SNS -> the
   gateway -> JetStream -> the dispatcher -> the replica).
2. Stream throughput in records/s, batchSize 1, 10 and 100, ordered and not, with one and
   with two dispatchers, next to the figures of the operator reading the streams alone
   (before streams moved to the dispatchers) and the same records as async HTTP
   invocations.
3. Two dispatchers reading an ordered Trigger (Redis, then NATS), the lease holder killed
   (SIGKILL) at 30%: records lost (target 0), delivered twice, and the takeover time (the
   kill to the first record the new holder delivers).

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
# records/s with the operator reading the streams (bench/events_bench.py before the move).
OPERATOR_FIGURES = {
    (1, True): 293, (1, False): 526, (10, True): 1781, (10, False): 2178,
    (100, True): 3584, (100, False): 5448,
}  # fmt: skip


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
    documents.append(
        _trigger(
            "takeover",
            {"stream": {"nats": {"stream": "TAKEOVER"}, "batchSize": 10, "ordered": True}},
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
        self.port, self.internal, self.autoscaler = free_port(), free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.dispatchers: list[subprocess.Popen[bytes]] = []
        self.s3_url = ""

    def start(self) -> None:
        log = (self.folder / "platform.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-u", "-m", "hanshu_cli", "dev", str(self.manifest),
                "--port", str(self.port), "--internal-port", str(self.internal),
                "--nats-url", self.nats_url, "--stable-window", "6",
                "--no-dispatcher", "--autoscaler-port", str(self.autoscaler),
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

    def start_dispatcher(self) -> subprocess.Popen[bytes]:
        log = (self.folder / f"dispatcher-{len(self.dispatchers)}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-u", "-m", "hanshu_dispatcher"],
            env={
                **os.environ,
                "HANSHU_NATS_URL": self.nats_url,
                "HANSHU_GATEWAY_INTERNAL_URL": f"http://127.0.0.1:{self.internal}",
                "HANSHU_AUTOSCALER_URL": f"http://127.0.0.1:{self.autoscaler}",
                "HANSHU_DISPATCHER_HOST": "127.0.0.1",
                "HANSHU_DISPATCHER_PORT": str(free_port()),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.dispatchers.append(process)
        return process

    def stop_dispatchers(self) -> None:
        for process in self.dispatchers:
            if process.poll() is None:
                process.terminate()
        for process in self.dispatchers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.dispatchers = []

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
        self.stop_dispatchers()
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
        await js.add_stream(name="TAKEOVER", subjects=["takeover.>"])
    finally:
        await client.close()


async def stream_rates(platform: Platform, runs: Path, records: int) -> dict[Any, float]:
    """records/s of each shape: ``records`` published, until the Function saw them all."""
    client = await nats.connect(platform.nats_url)
    js = client.jetstream()
    rates: dict[tuple[int, bool], float] = {}
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
            rates[(size, ordered)] = records / elapsed if done else 0.0
    finally:
        await client.close()
    return rates


async def async_rate(platform: Platform, runs: Path, records: int) -> float:
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
    return records / (time.monotonic() - started)


async def throughput(platform: Platform, runs: Path, records: int) -> None:
    one = await stream_rates(platform, runs, records)
    http = await async_rate(platform, runs, records)
    platform.start_dispatcher()  # a second one: both read every Trigger
    await asyncio.sleep(2)  # its catalog watch and consumers set up
    two = await stream_rates(platform, runs, records)
    print(f"\n2. Stream throughput, {records} records each (NATS JetStream source), records/s")
    print("   batchSize mode       operator  1 dispatcher  2 dispatchers")
    for size, ordered in SHAPES:
        mode = "ordered  " if ordered else "unordered"
        print(
            f"   {size:>9} {mode} {OPERATOR_FIGURES[(size, ordered)]:9.0f} "
            f"{one[(size, ordered)]:13.0f} {two[(size, ordered)]:14.0f}"
        )
    print(f"   the same records as async HTTP invocations (1 dispatcher): {http:8.0f} records/s")


async def lease_holder(nats_url: str, trigger: str) -> int | None:
    """The pid of the dispatcher holding an ordered Trigger's lease."""
    from hanshu_api.jetstream import ensure_stream_buckets

    client = await nats.connect(nats_url)
    try:
        buckets = await ensure_stream_buckets(client)
        with contextlib.suppress(Exception):
            held = await buckets.leases.get(f"default.{trigger}")
            return int((held.value or b"-0").decode().rsplit("-", 1)[1])
        return None
    finally:
        await client.close()


async def takeover(
    platform: Platform, runs: Path, trigger: str, ids: set[str], publish: Any
) -> None:
    """Two dispatchers, the holder of ``trigger``'s lease killed at 30%."""
    platform.start_dispatcher()
    platform.start_dispatcher()
    await publish()
    records = len(ids)
    await until(lambda: len(set(lines(runs)) & ids) >= records * 0.3, 300)
    holder = await lease_holder(platform.nats_url, trigger)
    doomed = next(p for p in platform.dispatchers if p.pid == holder)
    doomed.kill()
    killed = time.monotonic()
    at_kill = set(lines(runs)) & ids
    # The killed reader's batch in flight (10 records) may still land at the replica: the
    # new holder has taken over when a record past it arrives.
    await until(lambda: len(set(lines(runs)) & ids) > len(at_kill) + 10, 120)
    taken_over = time.monotonic() - killed
    await until(lambda: set(lines(runs)) >= ids, 300)
    platform.stop_dispatchers()
    seen = [line for line in lines(runs) if line in ids]
    lost = len(ids - set(seen))
    duplicates = len(seen) - len(set(seen))
    print(
        f"   {trigger:>8}: killed at {len(at_kill)} of {records}; records lost {lost} "
        f"(target 0), delivered twice {duplicates}, takeover {taken_over:4.1f} s"
    )


async def killed_reader(folder: Path, nats_url: str, records: int) -> None:
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
        manifest = manifests(folder, runs, f"redis://127.0.0.1:{port}/0")
        platform = Platform(folder, manifest, nats_url)
        platform.start()
        print("\n3. Two dispatchers, an ordered Trigger's reader killed (SIGKILL) at 30%")
        store = redis.Redis(port=port)
        redis_ids: set[str] = set()

        async def to_redis() -> None:
            pipe = store.pipeline()
            for n in range(records):
                pipe.xadd("ingest", {"data": json.dumps({"n": n})})
            redis_ids.update(i.decode() for i in pipe.execute())

        await to_redis()  # before the dispatchers: the ids known
        await takeover(platform, runs, "ingest", set(redis_ids), _nothing)
        first = await _last_takeover_sequence(nats_url)
        nats_ids = {f"TAKEOVER:{first + n}" for n in range(1, records + 1)}

        async def to_nats() -> None:
            client = await nats.connect(nats_url)
            try:
                js = client.jetstream()
                acks = [
                    await js.publish_async("takeover.new", json.dumps({"n": n}).encode())
                    for n in range(records)
                ]
                await asyncio.gather(*acks)
            finally:
                await client.close()

        await takeover(platform, runs, "takeover", nats_ids, to_nats)
        platform.stop()
    finally:
        server.terminate()


async def _nothing() -> None:
    return None


async def _last_takeover_sequence(nats_url: str) -> int:
    client = await nats.connect(nats_url)
    try:
        info = await client.jetstream().stream_info("TAKEOVER")
        return int(info.state.last_seq)
    finally:
        await client.close()


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hanshu-events-bench-"))
    nats_server = LocalNats(store_dir=str(folder / "nats")).start()
    runs = folder / "runs.txt"
    platform = Platform(folder, manifests(folder, runs, None), nats_server.url)
    try:
        await create_streams(nats_server.url)  # before their consumers start
        platform.start()
        platform.start_dispatcher()
        await uploads(platform, runs, args.uploads)
        await throughput(platform, runs, args.records)
        platform.stop()
        await killed_reader(folder, nats_server.url, args.records)
    finally:
        platform.stop()
        nats_server.close()
    print(f"\nlogs: {folder}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--records", type=int, default=2000)
    asyncio.run(main(parser.parse_args()))
