"""Stream Triggers on real servers: a NATS JetStream stream (the platform's nats-server) and
a Redis Stream (Debian's redis-server), published into the stream catalog by dev mode, read
by dispatcher processes and invoked through the dev platform's gateway into real runtime
replicas."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import redis
from hanshu_api.jetstream import ensure_stream_buckets
from nats.js.errors import KeyNotFoundError

from tests.support.async_platform import complete_json_lines
from tests.support.dev_platform import function
from tests.support.helpers import eventually
from tests.support.servers import free_port, recording_endpoint

CONSUMER = textwrap.dedent("""
    import json
    import os
    import time


    def consume(event, context):
        records = event["records"]
        with open(os.environ["RUNS_FILE"], "a") as runs:
            runs.write(json.dumps({"ids": [r["id"] for r in records],
                                   "data": [r["data"] for r in records],
                                   "encodings": [r["dataEncoding"] for r in records],
                                   "attributes": [r["attributes"] for r in records]}) + "\\n")
        time.sleep(float(os.environ.get("SECONDS_PER_BATCH", "0")))
        failed = [r["id"] for r in records
                  if isinstance(r["data"], dict) and r["data"].get("fail")]
        if failed and os.environ.get("ON_FAILURE") == "raise":
            raise RuntimeError(f"cannot take {failed}")
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}
""")


def consumer_function(name: str, **env: str) -> dict[str, Any]:
    return function(
        name,
        "consumer.consume",
        CONSUMER,
        env=[{"name": k, "value": v} for k, v in env.items()],
        scaling={"scaleToZeroGracePeriod": "2s", "maxReplicas": 3},
    )


def stream_trigger(name: str, function: str, **stream: Any) -> dict[str, Any]:
    return {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Trigger",
        "metadata": {"name": name},
        "spec": {"functionRef": {"name": function}, "stream": stream},
    }


def redis_secret(url: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "redis"},
        "stringData": {"url": url},
    }


def batches(platform: Any) -> list[dict[str, Any]]:
    return platform.runs()


def seen_ids(platform: Any) -> list[str]:
    return [i for batch in batches(platform) for i in batch["ids"]]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.02)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


async def test_nats_records_arrive_in_batches_filtered_and_decoded(async_platform):
    platform = async_platform(
        [
            consumer_function("orders"),
            stream_trigger(
                "orders",
                "orders",
                nats={"stream": "ORDERS", "subject": "orders.created"},
                batchSize=10,
                batchWindow="500ms",
            ),
        ],
        dispatchers=1,
    )
    client = await nats.connect(platform.nats.url)
    try:
        js = client.jetstream()
        await js.add_stream(name="ORDERS", subjects=["orders.>"])
        for n in range(25):
            await js.publish("orders.created", json.dumps({"n": n}).encode())
        await js.publish("orders.cancelled", b'{"n": -1}')  # not the Trigger's subject
        await js.publish("orders.created", b"\xff\xfe binary")
        await js.publish("orders.created", b"plain words")
    finally:
        await client.close()
    await eventually(lambda: len(seen_ids(platform)) >= 27, timeout=30, message="27 records")
    found = batches(platform)
    assert all(len(batch["ids"]) <= 10 for batch in found)
    assert len(found) < 27  # batched, not one call per record
    data = [d for batch in found for d in batch["data"]]
    encodings = [e for batch in found for e in batch["encodings"]]
    assert data[:25] == [{"n": n} for n in range(25)]
    assert encodings[25:] == ["base64", "text"]
    assert data[26] == "plain words"
    assert {"n": -1} not in data
    assert found[0]["attributes"][0]["subject"] == "orders.created"


async def test_redis_partial_failures_retry_only_the_failed_then_go_to_on_failure(
    async_platform, redis_server
):
    store = redis.Redis.from_url(redis_server)
    # Stored before the consumer starts: one batch of 20 (startFrom earliest).
    ids = [
        store.xadd("payments", {"data": json.dumps({"n": n, "fail": n in (3, 11)})}).decode()
        for n in range(20)
    ]
    platform = async_platform(
        [
            consumer_function("payments"),
            stream_trigger(
                "payments",
                "payments",
                redis={"stream": "payments", "urlSecretRef": {"name": "redis"},
                       "startFrom": "earliest"},
                batchSize=20,
                batchWindow="300ms",
                maxRetryAttempts=1,
                reportBatchItemFailures=True,
                ordered=False,
                onFailure={"subject": "payments.failed"},
            ),
            redis_secret(redis_server),
        ],
        dispatchers=1,
    )  # fmt: skip
    listener = await nats.connect(platform.nats.url)
    failures = await listener.subscribe("payments.failed")
    try:
        message = await failures.next_msg(timeout=30)
        record = json.loads(message.data)
        assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
        assert record["requestContext"]["approximateInvokeCount"] == 2
        assert [r["id"] for r in record["records"]] == [ids[3], ids[11]]
        assert record["records"][0]["data"] == {"n": 3, "fail": True}
        # One batch of all 20, then only the two that failed; all acknowledged in the end.
        assert [batch["ids"] for batch in batches(platform)] == [ids, [ids[3], ids[11]]]
        assert sorted(set(seen_ids(platform))) == sorted(ids)

        def all_acknowledged() -> bool:
            return store.xpending("payments", "hanshu-default-payments")["pending"] == 0

        await eventually(all_acknowledged, message="nothing left pending")
    finally:
        await listener.close()
        store.close()


async def test_ordered_a_failing_record_holds_back_the_ones_after_it(async_platform, redis_server):
    store = redis.Redis.from_url(redis_server)
    ids = [
        store.xadd("ledger", {"data": json.dumps({"n": n, "fail": n == 1})}).decode()
        for n in range(4)
    ]
    platform = async_platform(
        [
            consumer_function("ledger", ON_FAILURE="raise"),
            stream_trigger(
                "ledger",
                "ledger",
                redis={"stream": "ledger", "urlSecretRef": {"name": "redis"},
                       "startFrom": "earliest"},
                batchSize=1,
                maxRetryAttempts=2,
                ordered=True,
            ),
            redis_secret(redis_server),
        ],
        dispatchers=1,
    )  # fmt: skip
    try:
        await eventually(lambda: ids[3] in seen_ids(platform), timeout=60, message="the last")
        # 0, then 1 three times (1 + maxRetryAttempts), and only then 2 and 3.
        assert seen_ids(platform) == [ids[0], ids[1], ids[1], ids[1], ids[2], ids[3]]
    finally:
        store.close()


async def test_a_poison_record_goes_to_on_failure_without_a_call(async_platform, redis_server):
    store = redis.Redis.from_url(redis_server)
    store.xgroup_create("audit", "auditors", id="0", mkstream=True)
    poison = store.xadd("audit", {"data": '{"n": 1}'}).decode()
    # A consumer that died with it again and again: read, then claimed 9 more times, and
    # idle for ten minutes.
    store.xreadgroup("auditors", "crashed", {"audit": ">"})
    store.xclaim("audit", "auditors", "crashed", 0, [poison], idle=600_000, retrycount=9)
    async with recording_endpoint() as (url, received):
        platform = async_platform(
            [
                consumer_function("audit"),
                stream_trigger(
                    "audit",
                    "audit",
                    redis={"stream": "audit", "urlSecretRef": {"name": "redis"},
                           "group": "auditors"},
                    maxRetryAttempts=2,
                    onFailure={"url": url},
                ),
                redis_secret(redis_server),
            ],
            dispatchers=1,
        )  # fmt: skip
        sent = await eventually(lambda: received, timeout=30, message="the failure record")
    store.close()
    assert sent[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert [r["id"] for r in sent[0]["records"]] == [poison]
    assert poison not in seen_ids(platform)  # never sent to the Function


@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "unordered"])
@pytest.mark.slow
async def test_a_consumer_killed_mid_batch_loses_nothing(async_platform, redis_server, ordered):
    store = redis.Redis.from_url(redis_server)
    ids = [store.xadd("ingest", {"data": json.dumps({"n": n})}).decode() for n in range(40)]
    async with recording_endpoint() as (url, failed):
        documents = [
            consumer_function("ingest", SECONDS_PER_BATCH="0.3"),
            stream_trigger(
                "ingest",
                "ingest",
                redis={"stream": "ingest", "urlSecretRef": {"name": "redis"},
                       "startFrom": "earliest"},
                batchSize=5,
                batchWindow="100ms",
                ordered=ordered,
                onFailure={"url": url},
            ),
            redis_secret(redis_server),
        ]  # fmt: skip
        platform = async_platform(documents, dispatchers=1)
        await eventually(lambda: len(seen_ids(platform)) >= 10, message="work under way")
        doomed = platform.dispatchers[0]
        doomed.kill()  # the reader dies holding a batch
        doomed.wait()
        platform.start_dispatcher()
        await eventually(
            lambda: set(ids) <= set(seen_ids(platform)), timeout=60, message="all 40 records"
        )

        def all_acknowledged() -> bool:
            return store.xpending("ingest", "hanshu-default-ingest")["pending"] == 0

        await eventually(all_acknowledged, timeout=30, message="nothing left pending")
    store.close()
    seen = seen_ids(platform)
    assert failed == []  # nothing taken for a poison record because it was re-read
    # At least once: only what the killed consumer held (and its replicas had begun) runs
    # again, and only once more.
    assert max(seen.count(i) for i in ids) <= 2
    if ordered:
        assert len(seen) - len(ids) <= 5  # one batch in flight: at most it runs again
        first_seen = list(dict.fromkeys(seen))
        assert first_seen == ids  # in order, across the restart too


@pytest.mark.slow
async def test_lag_wakes_the_function_from_zero_scales_it_and_it_goes_back(async_platform):
    platform = async_platform(
        [
            consumer_function("backlog", SECONDS_PER_BATCH="0.1"),
            # Ordered, one record a batch: one call in flight at a time, so only the lag
            # reported to the autoscaler can ask for a second replica.
            stream_trigger("backlog", "backlog", nats={"stream": "JOBS"}, batchSize=1),
        ],
        dispatchers=1,
    )
    assert platform.ready_replicas("backlog") == 0
    client = await nats.connect(platform.nats.url)
    try:
        js = client.jetstream()
        await js.add_stream(name="JOBS", subjects=["jobs.>"])
        for n in range(60):
            await js.publish("jobs.new", json.dumps({"n": n}).encode())
    finally:
        await client.close()
    await eventually(
        lambda: platform.ready_replicas("backlog") >= 2, timeout=30, message="scaled on lag"
    )

    def lag() -> list[tuple[dict[str, str], float]]:
        return platform.dispatcher_samples("hanshu_dispatcher_stream_lag")

    # The lag the HanshuStreamLagGrowing alert reads, named by Trigger and Function...
    assert [(labels["trigger"], labels["function"]) for labels, _ in lag()] == [
        ("backlog", "backlog")
    ]
    await eventually(lambda: len(seen_ids(platform)) == 60, timeout=60, message="60 records")
    # ...down to nothing once every record is taken.
    await eventually(lambda: [v for _, v in lag()] == [0.0], timeout=15, message="lag 0")
    await eventually(
        lambda: platform.ready_replicas("backlog") == 0, timeout=30, message="back to zero"
    )


SHARED = textwrap.dedent("""
    import json
    import os


    def take(event, context):
        # One line per batch: which Trigger's Function saw which records, in order.
        with open(os.environ["RUNS_FILE"], "a") as runs:
            runs.write(json.dumps({"who": os.environ["WHO"],
                                   "records": [r["data"] for r in event["records"]]}) + "\\n")
        return {}
""")
KEYS = 10


def shared_function(name: str) -> dict[str, Any]:
    return function(
        name,
        "shared.take",
        SHARED,
        env=[{"name": "WHO", "value": name}],
        scaling={"minReplicas": 1, "maxReplicas": 3},
    )


async def lease_holder_pid(platform: Any, trigger: str) -> int | None:
    """The pid of the dispatcher holding an ordered Trigger's lease (its reader name ends
    with its pid)."""
    client = await nats.connect(platform.nats.url)
    try:
        buckets = await ensure_stream_buckets(client)
        try:
            held = await buckets.leases.get(f"default.{trigger}")
        except KeyNotFoundError:
            return None
        return int((held.value or b"-0").decode().rsplit("-", 1)[1])
    finally:
        await client.close()


def seen_by(platform: Any, who: str) -> list[dict[str, Any]]:
    return [r for run in platform.runs() if run["who"] == who for r in run["records"]]


@pytest.mark.parametrize("source", ["nats", "redis"])
@pytest.mark.slow
async def test_two_dispatchers_share_the_streams_and_a_killed_one_loses_nothing(
    async_platform, redis_server, source
):
    """An ordered and an unordered Trigger on the same stream, two dispatchers, one killed
    (the ordered Trigger's reader) at 30%: every record delivered to both, the duplicates
    counted, and the ordered Trigger's Function sees each key's records in order."""
    total = 10_000
    sent = [{"key": n % KEYS, "seq": n // KEYS, "n": n} for n in range(total)]
    if source == "nats":
        where: dict[str, Any] = {"nats": {"stream": "SHARED"}}
    else:
        where = {
            "redis": {"stream": "shared", "urlSecretRef": {"name": "redis"},
                      "startFrom": "earliest"},
        }  # fmt: skip
    documents = [
        shared_function("inorder"),
        shared_function("anyorder"),
        stream_trigger("inorder", "inorder", batchSize=100, batchWindow="50ms", **where),
        stream_trigger(
            "anyorder", "anyorder", batchSize=100, batchWindow="50ms", ordered=False, **where
        ),
        redis_secret(redis_server),
    ]
    platform = async_platform(documents, dispatchers=0)
    if source == "nats":
        client = await nats.connect(platform.nats.url)
        try:
            js = client.jetstream()
            await js.add_stream(name="SHARED", subjects=["shared.>"])
            for record in sent:
                await js.publish("shared.new", json.dumps(record).encode())
        finally:
            await client.close()
    else:
        store = redis.Redis.from_url(redis_server)
        pipe = store.pipeline()
        for record in sent:
            pipe.xadd("shared", {"data": json.dumps(record)})
        pipe.execute()
        store.close()
    first, second = platform.start_dispatcher(), platform.start_dispatcher()
    await eventually(
        lambda: len(seen_by(platform, "inorder")) >= total * 0.3,
        timeout=60,
        interval=0.05,
        message="30% read in order",
    )
    holder = await lease_holder_pid(platform, "inorder")
    doomed = first if holder == first.pid else second
    assert holder == doomed.pid
    doomed.kill()  # SIGKILL: its batches in flight, its lease, its pending records
    doomed.wait()
    for who in ("inorder", "anyorder"):
        await eventually(
            lambda who=who: {r["n"] for r in seen_by(platform, who)} == set(range(total)),
            timeout=90,
            interval=0.1,
            message=f"all {total} records delivered to {who}",
        )
    duplicates = {who: len(seen_by(platform, who)) - total for who in ("inorder", "anyorder")}
    print(f"\n{source}: {total} records, duplicates after the kill: {duplicates}")
    # At least once: only what the killed dispatcher held runs again.
    assert duplicates["inorder"] <= 100  # one batch in flight
    assert duplicates["anyorder"] <= 10 * 100  # its parallel batches
    ordered = seen_by(platform, "inorder")
    first_seen = list(dict.fromkeys(r["n"] for r in ordered))
    assert first_seen == list(range(total))  # in stream order, across the takeover too
    for key in range(KEYS):
        seqs = [r["seq"] for r in ordered if r["key"] == key]
        # Each key's records in order; a redelivered batch repeats, never goes back past it.
        assert list(dict.fromkeys(seqs)) == sorted(set(seqs))


async def test_dev_mode_reads_a_redis_stream_with_its_own_dispatcher(
    platform_factory, redis_server, tmp_path
):
    """`hanshu dev` alone (its in-process dispatcher, its own nats-server): the stream is
    published to its catalog with the Secret's URL sealed, and read."""
    runs = tmp_path / "runs.ndjson"
    store = redis.Redis.from_url(redis_server)
    ids = [store.xadd("solo", {"data": json.dumps({"n": n})}).decode() for n in range(5)]
    store.close()
    consumer = consumer_function("solo")
    consumer["spec"]["env"].append({"name": "RUNS_FILE", "value": str(runs)})
    platform_factory(
        [
            consumer,
            stream_trigger(
                "solo", "solo",
                redis={"stream": "solo", "urlSecretRef": {"name": "redis"},
                       "startFrom": "earliest"},
            ),
            redis_secret(redis_server),
        ]
    )  # fmt: skip

    def seen() -> list[str]:
        return [i for run in complete_json_lines(runs) for i in run["ids"]]

    await eventually(lambda: set(ids) <= set(seen()), timeout=60, message="the 5 records")
